"""The transfer tasks stage: seen / unseen tasks, each task's split, the seen tasks' formatted examples.

Order in :func:`split_seen_unseen` (cached per process, so validation and the stages split once): load the source,
keep ``tasks`` / ``clusters`` (:func:`~taskscope.studies.common.tasks.select_tasks`), split seen / unseen
(``split_dir``, ``unseen_clusters`` / ``unseen_tasks``, else the source's ``split`` metadata), cap the counts.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from typing import Any

from taskscope.common.files import atomic_write_json
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import TASKS_FILE, load_source, select_tasks, write_dropped
from taskscope.studies.transfer.config import TransferConfig, TransferTasks


@functools.lru_cache(maxsize=4)
def _split(tasks_json: str):
    from taskscope.tasks.splits import split_suite

    sel = TransferTasks.model_validate(json.loads(tasks_json))
    loaded = load_source(sel)
    split = split_suite(select_tasks(loaded, sel), unseen_clusters=sel.unseen_clusters, unseen_tasks=sel.unseen_tasks,
                        split_dir=sel.split_dir)
    seen, unseen = list(split.seen), list(split.unseen)
    seen = seen[: sel.max_seen_tasks] if sel.max_seen_tasks else seen
    unseen = unseen[: sel.max_unseen_tasks] if sel.max_unseen_tasks else unseen
    for where, chosen in (("seen", seen), ("unseen", unseen)):
        if not chosen:
            raise ValueError(f"tasks: no {where} tasks in the selection from {sel.source!r}")
    return loaded, seen, unseen


def split_seen_unseen(tasks: TransferTasks | dict[str, Any]):
    """``(loaded suite, seen tasks, unseen tasks)`` of a ``tasks`` section (module docstring; cached per process)."""
    dump = tasks.model_dump(mode="json") if isinstance(tasks, TransferTasks) else tasks
    return _split(json.dumps(dump, sort_keys=True, default=str))


def unseen_task(tasks: dict[str, Any], name: str):
    """``(task, test instances, few-shot pool)`` of unseen task ``name`` under the ``tasks`` config slice."""
    from taskscope.tasks.splits import split_task

    task = next(t for t in split_seen_unseen(tasks)[2] if t.name == name)
    split = split_task(task, test=tasks["unseen_test"], validation=0, fewshot_pool=tasks["fewshot_pool"], train=0,
                       seed=tasks["seed"], sni_test_first=tasks["sni_test_first"])
    return task, split.test, split.fewshot_pool


def run_tasks(ctx: StageContext) -> None:
    """Split every seen task (train capped) and format it with ``prompt_format`` under `seen_prompt_budget` tokens
    of the model's tokenizer (exemplars dropped first, a warning with counts when anything is cut - the same
    `format_task` the evaluations use); record every unseen task's split."""
    from taskscope.evaluate.examples import token_counter
    from taskscope.models.loading import load_spec_tokenizer
    from taskscope.tasks.formats import format_task
    from taskscope.tasks.splits import split_task

    config: TransferConfig = ctx.config
    tasks = config.tasks.model_dump(mode="json")
    fmt = config.prompt_format.model_copy(update={"max_prompt_tokens": config.seen_prompt_budget()})
    count = token_counter(load_spec_tokenizer(config.model))
    loaded, seen_tasks, unseen_tasks = split_seen_unseen(config.tasks)
    write_dropped(loaded, ctx.out_dir)
    seen = {}
    for task in seen_tasks:
        split = split_task(task, test=tasks["test"], validation=tasks["validation"], train=None,
                           cap=config.tasks.caps.get(task.name, config.tasks.cap), seed=tasks["seed"])
        seen[task.name] = {"cluster": task.cluster, "size": len(split.train), **{
            part: [asdict(e) for e in format_task(task, getattr(split, part), fmt, seed=tasks["seed"],
                                                  count_tokens=count)]
            for part in ("train", "validation", "test")}}
    unseen = {}
    for task in unseen_tasks:
        _, test, pool = unseen_task(tasks, task.name)
        unseen[task.name] = {"cluster": task.cluster, "test_ids": [i.id for i in test],
                             "pool_ids": [i.id for i in pool]}
    atomic_write_json(ctx.out_dir / TASKS_FILE, {"seen": seen, "unseen": unseen})
