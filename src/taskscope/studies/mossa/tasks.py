"""The MOSSA tasks stage: select the suite, split every task once, format its training examples and MOSSA inputs.

Order in :func:`run_tasks`: load the source and keep the selection (:func:`select_suite`: ``tasks`` / ``clusters``,
then at most ``max_tasks_per_cluster`` per cluster); record what the loader dropped (``dropped.json``); split each
task into its disjoint shares (``n_inputs`` test inputs, ``validation``, at most ``n_train`` training instances;
:func:`formatted_splits`) and write the formatted training examples and inputs (``tasks.json``).
"""

from __future__ import annotations

from dataclasses import asdict

from taskscope.common.files import atomic_write_json
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import TASKS_FILE, load_source, select_tasks, write_dropped
from taskscope.studies.mossa.config import MossaConfig


def select_suite(config: MossaConfig, suite=None):
    """The selected tasks of ``suite`` (default: the loaded source): :func:`select_tasks`, then the cap per cluster."""
    sel = config.tasks
    suite = select_tasks(load_source(sel) if suite is None else suite, sel)
    if sel.max_tasks_per_cluster is not None:
        counts: dict[str, int] = {}

        def keep(task) -> bool:
            counts[task.cluster] = counts.get(task.cluster, 0) + 1
            return counts[task.cluster] <= sel.max_tasks_per_cluster

        suite = suite.filter(keep)
    if len(suite) == 0:
        raise ValueError(f"tasks: the selection from {sel.source!r} is empty")
    return suite


def formatted_splits(config: MossaConfig, parts: tuple[str, ...], suite=None) -> dict[str, dict[str, list[dict]]]:
    """Per task of ``suite`` (default: :func:`select_suite`), the formatted examples of each split in ``parts``
    (``train``, ``test``, ``validation``).

    One split per task (``n_inputs`` MOSSA inputs as the test split, the ``validation`` share, ``n_train`` for
    training), so every stage that asks sees the same, disjoint examples.
    """
    from taskscope.tasks.formats import format_task
    from taskscope.tasks.splits import split_task

    fmt = config.prompt_format
    sel = config.tasks
    out = {}
    for task in suite if suite is not None else select_suite(config):
        split = split_task(task, test=sel.n_inputs, validation=sel.validation, train=sel.n_train, seed=sel.seed)
        out[task.name] = {"cluster": task.cluster, **{
            part: [asdict(e) for e in format_task(task, getattr(split, part), fmt, seed=sel.seed)]
            for part in parts}}
    return out


def run_tasks(ctx: StageContext) -> None:
    """Load and select the suite; record what its loader dropped (``dropped.json``, a warning when anything
    was); split every task and format the training examples and the MOSSA inputs (``tasks.json``)."""
    suite = select_suite(ctx.config)
    write_dropped(suite, ctx.out_dir)
    splits = formatted_splits(ctx.config, ("train", "test"), suite)
    atomic_write_json(ctx.out_dir / TASKS_FILE, {
        name: {"cluster": info["cluster"], "train": info["train"], "inputs": info["test"]}
        for name, info in splits.items()})


def validation_records(config: MossaConfig) -> dict[str, list[dict]]:
    """Per task, its formatted validation examples (capped by ``control_evaluation.max_examples``)."""
    cap = config.control_evaluation.max_examples
    return {name: info["validation"][:cap] for name, info in formatted_splits(config, ("validation",)).items()}
