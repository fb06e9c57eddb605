"""Splits: disjointness, sizes, seeded draws, SNI's test-first convention, stability, seen/unseen."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.tasks import Instance, Task, TaskError, TaskSuite, split_suite, split_task
from taskscope.tasks.splits import seed_from, seeded_order, task_rng


def _task(name: str = "t", n: int = 50, clusters: tuple[str, ...] = ("c",), **metadata) -> Task:
    return Task(name=name, instances=tuple(Instance(f"{name}-{i}", f"x{i}", (f"y{i}",)) for i in range(n)),
                clusters=clusters, metadata=metadata)


def _ids(instances) -> list[str]:
    return [inst.id for inst in instances]


def test_fractions_give_disjoint_parts_covering_the_task() -> None:
    task = _task(n=67)
    split = split_task(task, test=0.1, validation=0.1, seed=1)
    assert (len(split.test), len(split.validation), len(split.train), len(split.fewshot_pool)) == (7, 7, 53, 0)
    parts = [set(_ids(p)) for p in (split.train, split.validation, split.test)]
    assert set.union(*parts) == set(_ids(task.instances))
    assert sum(len(p) for p in parts) == 67
    order = _ids(task.instances)
    for part in (split.train, split.validation, split.test):
        assert _ids(part) == sorted(_ids(part), key=order.index)  # returned in file order


def test_sni_convention_first_instances_are_test_and_pool_never_overlaps() -> None:
    task = _task(n=200)
    split = split_task(task, test=100, validation=0, fewshot_pool=40, train=0, sni_test_first=True, seed=2)
    assert _ids(split.test) == _ids(task.instances[:100])
    assert len(split.fewshot_pool) == 40 and not set(_ids(split.fewshot_pool)) & set(_ids(split.test))
    assert split.train == () and split.validation == ()


def test_cap_is_a_seeded_draw_and_reproducible() -> None:
    task = _task(n=100)
    a = split_task(task, test=10, validation=0, cap=20, seed=7)
    b = split_task(task, test=10, validation=0, cap=20, seed=7)
    c = split_task(task, test=10, validation=0, cap=20, seed=8)
    assert a == b and len(a.train) == 20
    assert a.train != c.train
    expected = seeded_order(task, 7)[10:30]
    assert set(_ids(a.train)) == set(_ids(expected))
    assert _ids(a.train) != _ids(task.instances[:20])


def test_splits_are_stable_when_other_tasks_or_instances_are_added() -> None:
    small, big = _task(n=50), _task(n=60)
    order_small, order_big = _ids(seeded_order(small, 3)), _ids(seeded_order(big, 3))
    assert [i for i in order_big if i in set(order_small)] == order_small
    suite_a = TaskSuite("a", (small,))
    suite_b = TaskSuite("b", (_task("other", n=30), small))
    assert split_task(suite_a["t"], seed=3) == split_task(suite_b["t"], seed=3)


def test_empty_split_raises_naming_the_task() -> None:
    with pytest.raises(TaskError, match="split 'fewshot_pool' is empty") as info:
        split_task(_task("tiny", n=5), test=100, validation=0, fewshot_pool=40, train=0, sni_test_first=True)
    assert (info.value.task, info.value.field) == ("tiny", "fewshot_pool")
    with pytest.raises(TaskError, match="split 'train' is empty"):
        split_task(_task("tiny", n=2), test=1, validation=1)
    with pytest.raises(TaskError, match="fraction must be in"):
        split_task(_task(), test=1.5)
    with pytest.raises(TaskError, match="cap must be"):
        split_task(_task(), cap=0)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 80), test=st.integers(0, 30), val=st.floats(0, 0.5), pool=st.integers(0, 10),
       cap=st.one_of(st.none(), st.integers(1, 40)), seed=st.integers(0, 10**6), first=st.booleans())
def test_split_property(n: int, test: int, val: float, pool: int, cap: int | None, seed: int, first: bool) -> None:
    task = _task(n=n)
    try:
        split = split_task(task, test=test, validation=val, fewshot_pool=pool, cap=cap, seed=seed, sni_test_first=first)
    except TaskError as err:
        assert err.task == "t" and "is empty" in str(err)
        return
    parts = [_ids(p) for p in (split.train, split.validation, split.test, split.fewshot_pool)]
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat))
    assert len(split.test) == min(test, n)
    assert len(split.validation) == min(int(val * n + 0.5), n - len(split.test))
    if cap is not None:
        assert len(split.train) <= cap
    else:
        assert len(flat) == n
    if first:
        assert _ids(split.test) == _ids(task.instances[: len(split.test)])


def test_seed_helpers_are_deterministic_and_seed_dependent() -> None:
    assert seed_from(1, "a", "b") == seed_from(1, "a", "b") != seed_from(2, "a", "b")
    assert task_rng(0, "t").integers(10**9) == task_rng(0, "t").integers(10**9)


SUITE = TaskSuite("s", (
    _task("a", clusters=("Textual Entailment",), split="seen"),
    _task("b", clusters=("Reasoning -> Commonsense Reasoning",), split="unseen"),
    _task("c", clusters=("Summarization",)),
))


def test_split_suite_by_clusters_tasks_metadata() -> None:
    by_cluster = split_suite(SUITE, unseen_clusters=["Textual Entailment", "Reasoning"])
    assert by_cluster.unseen.names == ["a", "b"] and by_cluster.seen.names == ["c"]
    by_task = split_suite(SUITE, unseen_tasks=["c"])
    assert by_task.unseen.names == ["c"] and by_task.seen.names == ["a", "b"]
    by_meta = split_suite(SUITE)
    assert by_meta.unseen.names == ["b"] and by_meta.seen.names == ["a", "c"]
    with pytest.raises(TaskError, match="not in suite"):
        split_suite(SUITE, unseen_tasks=["zzz"])
    with pytest.raises(TaskError, match="no split lists"):
        split_suite(TaskSuite("plain", (_task("x"),)))


def test_split_suite_by_split_dir(tmp_path: Path) -> None:
    (tmp_path / "train_tasks.txt").write_text("a\nc\n")
    (tmp_path / "test_tasks.txt").write_text("b\n")
    result = split_suite(SUITE, split_dir=tmp_path)
    assert result.seen.names == ["a", "c"] and result.unseen.names == ["b"]
    with pytest.raises(TaskError, match="split list not found"):
        split_suite(SUITE, split_dir=tmp_path / "missing")


def test_real_sni_default_split(sni_sample: Path) -> None:
    from taskscope.tasks import load_suite

    suite = load_suite(f"sni:{sni_sample}")
    by_meta, by_dir = split_suite(suite), split_suite(suite, split_dir=sni_sample)
    assert by_meta.seen.names == by_dir.seen.names and by_meta.unseen.names == by_dir.unseen.names
    assert (len(by_dir.seen), len(by_dir.unseen)) == (12, 8)
