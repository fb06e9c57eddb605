"""Splits: seen / unseen tasks of a suite, and per-task train / validation / test / few-shot pool.

Every random choice is derived from :func:`seed_from` (a 64-bit integer of its parts), never from a
shared generator, so results are reproducible from ``seed`` and *stable when tasks are added to a suite*:

* the order of a task's instances is the order of ``seed_from(seed, task name, instance id)``;
* per-task randomness (:func:`task_rng`) is seeded by ``seed_from(seed, task name)``.

Order of operations in :func:`split_task`:

1. ``test``: with ``sni_test_first=True`` the first ``test`` instances in file order (SNI's
   convention: the first 100 instances of each test task are its test set); otherwise the first
   ``test`` instances of the seeded order.
2. The remaining instances, in seeded order, give ``validation``, then ``fewshot_pool``, then
   ``train`` (``train=None``: all the rest), and ``train`` is truncated to ``cap`` - so a cap is a
   seeded draw, not the head of the file.  Test, validation, few-shot pool and train never overlap.
3. Each split is returned in the task's file order.  A split that was asked for (amount > 0, or
   ``train=None``) but comes out empty raises :class:`TaskError` naming the task and the split.

Amounts are counts (``int``) or fractions of the task's instances (``float`` in ``[0, 1)``,
rounded half up); counts larger than what is left are clipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskscope.tasks.core import Instance, Task, TaskError, TaskSuite

Amount = int | float


def seed_from(*parts: object) -> int:
    """A 64-bit integer seed (or sort key) derived from ``parts``, identical across processes and platforms.

    For random generators and seeded orders only; cache keys use `taskscope.common.hashing.digest`.
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def task_rng(seed: int, task_name: str) -> np.random.Generator:
    """A generator for per-task randomness, seeded by ``seed_from(seed, task name)``."""
    return np.random.default_rng(seed_from(seed, task_name))


def seeded_order(task: Task, seed: int = 0) -> list[Instance]:
    """The task's instances ordered by ``seed_from(seed, task name, instance id)``."""
    return sorted(task.instances, key=lambda inst: seed_from(seed, task.name, inst.id))


def _in_file_order(task: Task, chosen: Iterable[Instance]) -> tuple[Instance, ...]:
    ids = {inst.id for inst in chosen}
    return tuple(inst for inst in task.instances if inst.id in ids)


def cap_instances(task: Task, cap: int, seed: int = 0) -> Task:
    """The task with at most ``cap`` instances, drawn by the seeded order, kept in file order."""
    if cap < 1:
        raise TaskError(f"instance cap must be >= 1, got {cap}", task=task.name, field="cap")
    return task.with_instances(_in_file_order(task, seeded_order(task, seed)[:cap]))


def _count(amount: Amount | None, n: int, *, task: str, field: str) -> int:
    if amount is None:
        return 0
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TaskError(f"split amount must be an int count or a float fraction, got {amount!r}", task=task, field=field)
    if isinstance(amount, float):
        if not 0.0 <= amount < 1.0:
            raise TaskError(f"split fraction must be in [0, 1), got {amount}", task=task, field=field)
        return int(amount * n + 0.5)
    if amount < 0:
        raise TaskError(f"split count must be >= 0, got {amount}", task=task, field=field)
    return amount


@dataclass(frozen=True)
class TaskSplit:
    """The instances of one task, split four ways (tuples in file order, pairwise disjoint)."""

    train: tuple[Instance, ...]
    validation: tuple[Instance, ...]
    test: tuple[Instance, ...]
    fewshot_pool: tuple[Instance, ...]


def split_task(
    task: Task,
    *,
    test: Amount = 0.1,
    validation: Amount = 0.1,
    fewshot_pool: Amount = 0,
    train: Amount | None = None,
    cap: int | None = None,
    seed: int = 0,
    sni_test_first: bool = False,
) -> TaskSplit:
    """Split one task; see the module docstring for the order of operations.

    ``split_task(t, test=0.1, validation=0.1)`` gives 10 % / 10 % / 80 % train;
    ``split_task(t, test=100, fewshot_pool=40, train=0, sni_test_first=True)`` gives an unseen
    task's SNI test set and a disjoint few-shot pool.
    """
    n = task.n_instances
    if cap is not None and cap < 1:
        raise TaskError(f"train cap must be >= 1, got {cap}", task=task.name, field="cap")
    n_test = _count(test, n, task=task.name, field="test")
    if sni_test_first:
        test_part = list(task.instances[:n_test])
        test_ids = {inst.id for inst in test_part}
        rest = [inst for inst in seeded_order(task, seed) if inst.id not in test_ids]
    else:
        order = seeded_order(task, seed)
        test_part, rest = order[:n_test], order[n_test:]
    n_val = _count(validation, n, task=task.name, field="validation")
    val_part, rest = rest[:n_val], rest[n_val:]
    n_pool = _count(fewshot_pool, n, task=task.name, field="fewshot_pool")
    pool_part, rest = rest[:n_pool], rest[n_pool:]
    n_train = len(rest) if train is None else _count(train, n, task=task.name, field="train")
    if cap is not None:
        n_train = min(n_train, cap)
    train_part = rest[:n_train]

    asked = {"test": n_test, "validation": n_val, "fewshot_pool": n_pool, "train": 1 if train is None else n_train}
    got = {"test": test_part, "validation": val_part, "fewshot_pool": pool_part, "train": train_part}
    for name, wanted in asked.items():
        if wanted > 0 and not got[name]:
            raise TaskError(
                f"split {name!r} is empty after splitting {n} instances "
                f"(test={test!r}, validation={validation!r}, fewshot_pool={fewshot_pool!r}, train={train!r}, cap={cap!r})",
                task=task.name,
                field=name,
            )
    return TaskSplit(
        train=_in_file_order(task, train_part),
        validation=_in_file_order(task, val_part),
        test=_in_file_order(task, test_part),
        fewshot_pool=_in_file_order(task, pool_part),
    )


@dataclass(frozen=True)
class SuiteSplit:
    """Seen (training) and unseen (held-out) tasks of a suite."""

    seen: TaskSuite
    unseen: TaskSuite


def read_split_lists(split_dir: str | Path) -> tuple[list[str], list[str]]:
    """``(train task names, test task names)`` from ``train_tasks.txt`` / ``test_tasks.txt`` in ``split_dir``."""
    split_dir = Path(split_dir)
    lists = []
    for filename in ("train_tasks.txt", "test_tasks.txt"):
        path = split_dir / filename
        if not path.is_file():
            raise TaskError(f"split list not found in {str(split_dir)!r}", file=str(path), field=filename)
        lists.append([line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    return lists[0], lists[1]


def _has_category(task: Task, categories: set[str]) -> bool:
    """True when a category of the task equals one of ``categories`` or lies under it (``"A -> B"`` under ``"A"``)."""
    return any(c in categories or any(c.startswith(f"{p} -> ") for p in categories) for c in task.clusters)


def split_suite(
    suite: TaskSuite,
    *,
    unseen_clusters: Sequence[str] | None = None,
    unseen_tasks: Sequence[str] | None = None,
    split_dir: str | Path | None = None,
) -> SuiteSplit:
    """Seen / unseen tasks, by the first of these that is given:

    1. ``split_dir`` (SNI ``splits/<name>/``): seen = tasks in ``train_tasks.txt``, unseen = tasks in
       ``test_tasks.txt``; tasks in neither list are left out (as SNI does).
    2. ``unseen_clusters`` and/or ``unseen_tasks``: unseen = tasks named in ``unseen_tasks`` or having a
       category in (or under) ``unseen_clusters``; seen = the rest.
    3. Neither: the ``metadata["split"]`` that the SNI source sets from its split lists
       (``"seen"`` / ``"unseen"``); tasks without it are seen.  A suite where no task says
       ``"unseen"`` raises :class:`TaskError`.
    """
    if split_dir is not None:
        train_names, test_names = read_split_lists(split_dir)
        train_set, test_set = set(train_names), set(test_names)
        seen = suite.filter(lambda t: t.name in train_set, name=f"{suite.name}:seen")
        unseen = suite.filter(lambda t: t.name in test_set, name=f"{suite.name}:unseen")
    elif unseen_clusters is not None or unseen_tasks is not None:
        names = set(unseen_tasks or ())
        missing = sorted(names - set(suite.names))
        if missing:
            raise TaskError(f"unseen tasks not in suite {suite.name!r}: {missing}", task=missing[0], field="unseen_tasks")
        categories = set(unseen_clusters or ())

        def is_unseen(task: Task) -> bool:
            return task.name in names or _has_category(task, categories)

        seen = suite.filter(lambda t: not is_unseen(t), name=f"{suite.name}:seen")
        unseen = suite.filter(is_unseen, name=f"{suite.name}:unseen")
    else:
        unseen = suite.filter(lambda t: t.metadata.get("split") == "unseen", name=f"{suite.name}:unseen")
        if not len(unseen):
            raise TaskError(
                f"suite {suite.name!r} has no split lists: pass unseen_clusters, unseen_tasks or split_dir",
                field="split",
            )
        seen = suite.filter(lambda t: t.metadata.get("split") != "unseen", name=f"{suite.name}:seen")
    return SuiteSplit(seen=seen, unseen=unseen)
