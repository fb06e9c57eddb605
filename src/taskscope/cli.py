"""The ``taskscope`` command line (Typer + rich).  Thin: the logic lives in the packages it calls.

Command groups: ``tasks`` (list / show / export task suites).  Further groups are attached at the
end of this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskscope.tasks import (
    FORMAT_KINDS,
    PromptFormat,
    TaskError,
    TaskSuite,
    format_task,
    label_tokens,
    load_suite,
)
from taskscope.tasks.formats import example_record, export_jsonl

app = typer.Typer(name="taskscope", help="Multi-task transfer and layer-wise similarity in instruction-tuned LMs.",
                  no_args_is_help=True, add_completion=False)
tasks_app = typer.Typer(help="Inspect task suites: sni:PATH, templated:PATH, builtin.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")

console = Console()
err_console = Console(stderr=True)

Seed = Annotated[int, typer.Option("--seed", help="Seed for instance draws and template sampling.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Skip bad task files with a warning instead of failing.")]
NInstances = Annotated[int | None, typer.Option("--n-instances", help="Cap every task to N instances (seeded draw).")]
Kind = Annotated[str, typer.Option("--format", help=f"Task context: {', '.join(FORMAT_KINDS)}.")]
NExemplars = Annotated[int, typer.Option("--n-exemplars", help="Positive exemplars for exemplar formats.")]
TaskName = Annotated[bool, typer.Option("--task-name/--no-task-name", help="Start prompts with the task name.")]
Spec = Annotated[str, typer.Argument(help="Suite spec, e.g. sni:/data/sni, templated:spec.yaml, builtin.")]
TemplatePolicy = Annotated[str, typer.Option("--template-policy", help="Templated tasks: fixed, cycle or sample.")]


def _fail(err: Exception) -> typer.Exit:
    err_console.print(Text(f"error: {err}", style="red"))
    return typer.Exit(code=1)


def _load(spec: str, seed: int, skip_bad: bool, n_instances: int | None) -> TaskSuite:
    options: dict[str, Any] = {"seed": seed}
    if skip_bad:
        options["skip_bad"] = True
    if n_instances is not None:
        options["n_instances"] = n_instances
    try:
        return load_suite(spec, **options)
    except (TaskError, TypeError) as err:
        raise _fail(err) from err


def _format(kind: str, n_exemplars: int, task_name: bool, policy: str) -> PromptFormat:
    try:
        return PromptFormat(kind=kind, n_exemplars=n_exemplars, add_task_name=task_name, template_policy=policy)
    except ValueError as err:
        raise _fail(err) from err


@tasks_app.command("list")
def tasks_list(
    spec: Spec,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array, one object per task.")] = False,
    seed: Seed = 0,
    skip_bad: SkipBad = False,
    n_instances: NInstances = None,
) -> None:
    """List the tasks of a suite with their cluster, categories and instance counts."""
    suite = _load(spec, seed, skip_bad, n_instances)
    rows = [task.summary() for task in suite]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{suite.name}: {len(suite)} tasks, {len(suite.clusters)} clusters")
    for column in ("name", "cluster", "categories", "n_instances", "split"):
        table.add_column(column, justify="right" if column == "n_instances" else "left")
    for row in rows:
        table.add_row(row["name"], row["cluster"], "; ".join(row["categories"]), str(row["n_instances"]),
                      row["split"] or "")
    console.print(table)


@tasks_app.command("show")
def tasks_show(
    spec: Spec,
    name: Annotated[str, typer.Argument(help="Task name.")],
    kind: Kind = "definition_exemplars",
    n: Annotated[int, typer.Option("--n", help="Number of instances to show (the task's first N).")] = 3,
    n_exemplars: NExemplars = 2,
    task_name: TaskName = False,
    template_policy: TemplatePolicy = "fixed",
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Local tokenizer folder: show trained tokens.")] = None,
    seed: Seed = 0,
    skip_bad: SkipBad = False,
) -> None:
    """Show formatted prompts and targets exactly as a model sees them."""
    suite = _load(spec, seed, skip_bad, None)
    try:
        task = suite[name]
    except KeyError as err:
        raise _fail(err) from err
    fmt = _format(kind, n_exemplars, task_name, template_policy)
    examples = format_task(task, task.instances[:n], fmt, seed=seed)
    tok = None
    if tokenizer is not None:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
        except (OSError, ValueError) as err:
            raise _fail(err) from err
    for example in examples:
        console.rule(Text(f"{example.task} / {example.instance_id} / template {example.template_index}"))
        console.print(Text("PROMPT", style="bold"))
        console.print(Text(example.prompt), soft_wrap=True)
        console.print(Text("TARGETS", style="bold"))
        for target in example.targets:
            console.print(Text(repr(target)), soft_wrap=True)
        if tok is not None:
            table = Table("#", "token id", "token", "trained")
            for i, view in enumerate(label_tokens(tok, example)):
                table.add_row(str(i), str(view.token_id), Text(repr(view.text)), "yes" if view.trained else "no",
                              style="green" if view.trained else None)
            console.print(table)


@tasks_app.command("export")
def tasks_export(
    spec: Spec,
    out: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    kind: Kind = "definition_exemplars",
    n_exemplars: NExemplars = 2,
    task_name: TaskName = False,
    template_policy: TemplatePolicy = "fixed",
    seed: Seed = 0,
    skip_bad: SkipBad = False,
    n_instances: NInstances = None,
) -> None:
    """Write every formatted instance of a suite to JSONL (one object per instance)."""
    suite = _load(spec, seed, skip_bad, n_instances)
    fmt = _format(kind, n_exemplars, task_name, template_policy)
    records = [example_record(ex, cluster=task.cluster, format=fmt.kind)
               for task in suite for ex in format_task(task, None, fmt, seed=seed)]
    count = export_jsonl(records, out)
    err_console.print(f"wrote {count} examples of {len(suite)} tasks to {out}")


# --- further command groups (run, models) are attached below this line --------------------------

from taskscope.pipeline.run import run_command  # noqa: E402  (the pipeline is the heavy import)

app.command(
    "run",
    help="Run (or resume) a study from a YAML config; with no config, the MOSSA quickstart on the "
    "embedded Gemma 3 270M and the builtin tasks. Finished stages are reused.",
)(run_command)


@app.command("clean")
def clean(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete (without it: only list what would go).")] = False,
) -> None:
    """Remove stage folders the last successful run of RUN no longer uses (a dry run unless --yes)."""
    from taskscope.pipeline.lock import RunLockedError
    from taskscope.pipeline.run import clean_run

    try:
        sizes = clean_run(run, delete=yes)
    except (FileNotFoundError, RunLockedError) as err:
        raise _fail(err) from err
    verb = "removed" if yes else "would remove"
    for folder, size in sizes.items():
        console.print(f"{verb} {folder} ({size / 1e6:.1f} MB)")
    total = sum(sizes.values()) / 1e6
    console.print(f"{verb} {len(sizes)} superseded stage folder(s), {total:.1f} MB"
                  + ("" if yes or not sizes else "; run again with --yes to delete them"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
