"""What a transfer config's pydantic model cannot check alone (the kind's ``plugin_problems`` / ``task_problems``)."""

from __future__ import annotations

from pathlib import Path

from taskscope.pipeline.validate import Problem, clusters_of, name_problems, sampler_problems
from taskscope.studies.common.validate import selection_problems
from taskscope.studies.transfer.config import TransferConfig


def transfer_plugin_problems(config: TransferConfig) -> list[Problem]:
    """The sampler of every training section (the study's, the few-shot grid's, each model's), the split folder."""
    sections = {"instruction_tuning": config.instruction_tuning, "fewshot.train": config.fewshot.train}
    sections |= {f"models.{i}.train": config.train_config(m.name) for i, m in enumerate(config.models)
                 if m.kind == "multitask" and m.train}
    problems = [p for where, section in sections.items() for p in sampler_problems(where, section)]
    if config.tasks.split_dir is not None and not Path(config.tasks.split_dir).is_dir():
        problems.append(Problem("tasks.split_dir", f"folder {str(config.tasks.split_dir)!r} does not exist"))
    return problems


def transfer_task_problems(config: TransferConfig) -> list[Problem]:
    """Load the suite, check the task / cluster / unseen names and caps, then split it as the tasks stage will."""
    from taskscope.studies.transfer.tasks import split_seen_unseen
    from taskscope.tasks import TaskError

    sel = config.tasks
    suite, problems = selection_problems(sel)
    if suite is None:
        return problems
    problems += name_problems("tasks.unseen_tasks", sel.unseen_tasks, suite.names, "task")
    problems += name_problems("tasks.unseen_clusters", sel.unseen_clusters, clusters_of(suite), "cluster")
    problems += name_problems("tasks.caps", list(sel.caps), suite.names, "task")
    if problems:
        return problems
    try:  # the same (cached) split the tasks stage uses, so it is not computed twice in one process
        split_seen_unseen(sel)
    except (TaskError, KeyError, ValueError) as err:
        problems.append(Problem("tasks", str(err).strip("\"'")))
    return problems
