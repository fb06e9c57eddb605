"""A Markdown catalogue of the builtin tasks, one example each (the table in ``docs/builtin_tasks.md``).

Regenerate the table with ``python -m taskscope.tasks.builtin.catalog``; a test checks that the
docs hold exactly what this prints.
"""

from __future__ import annotations

from taskscope.tasks.builtin import load_builtin


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render_catalog(seed: int = 0) -> str:
    """Markdown: one table row per task, grouped by cluster (type, templates, example input and outputs),
    then each task's definition."""
    suite = load_builtin(n_instances=1, seed=seed)
    lines = [
        f"{len(suite)} tasks in {len(suite.clusters)} clusters (example: instance 0, seed {seed}, template 0).",
        "",
        "| cluster | task | type | templates | example input | reference output(s) |",
        "|---|---|---|---|---|---|",
    ]
    for task in suite:
        instance = task.instances[0]
        kind = task.metadata["task_type"]
        if kind == "classification":
            kind += " (" + " / ".join(task.metadata["labels"]) + ")"
        outputs = " ; ".join(instance.outputs)
        lines.append(f"| {task.cluster} | `{task.name}` | {kind} | {len(task.templates)} | "
                     f"{_cell(instance.input)} | {_cell(outputs)} |")
    lines += ["", "Task definitions (the rule behind each task):", ""]
    lines += [f"* `{task.name}`{' (finite set of facts)' if task.metadata['finite_inputs'] else ''}: "
              f"{task.definition}" for task in suite]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_catalog(), end="")
