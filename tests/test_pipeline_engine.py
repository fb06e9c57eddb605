"""The cached stage engine on small stages: reuse, reruns of dependants only, resume after a crash, executors."""

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from taskscope.common.files import atomic_dir
from taskscope.pipeline.cache import is_done, read_marker
from taskscope.pipeline.executors import EXECUTORS, get_executor
from taskscope.pipeline.stages import Stage, run_stages


@dataclass(frozen=True)
class ToyConfig:
    x: int = 1
    y: int = 10
    items: tuple[str, ...] = ("p", "q", "r")
    fail_on: str = ""  # the fan-out job raises on this item
    log: str = ""  # file every job call appends its item to


def _count(log: str, name: str) -> None:
    with open(log, "a") as handle:
        handle.write(name + "\n")


def _calls(config: ToyConfig) -> list[str]:
    path = Path(config.log)
    return path.read_text().split() if path.exists() else []


def square_job(item: str, value: int, fail_on: str, log: str, out_dir: Path) -> None:
    if item == fail_on:
        raise RuntimeError(f"planted failure on {item}")
    _count(log, f"job:{item}")
    (Path(out_dir) / "value.txt").write_text(str(value * value))


def run_a(ctx):
    _count(ctx.config.log, "a")
    (ctx.out_dir / "a.txt").write_text(str(ctx.config.x))


def run_b(ctx):
    _count(ctx.config.log, "b")
    a = int((ctx.inputs["a"] / "a.txt").read_text())
    (ctx.out_dir / "b.txt").write_text(str(a + ctx.config.y))


def run_c(ctx):
    _count(ctx.config.log, "c")
    b = int((ctx.inputs["b"] / "b.txt").read_text())
    c = ctx.config
    done = ctx.map_items(square_job, {i: (i, b + k, c.fail_on, c.log) for k, i in enumerate(c.items)}, "squares")
    total = sum(int((folder / "value.txt").read_text()) for folder in done.values())
    (ctx.out_dir / "c.json").write_text(json.dumps({"total": total}))


STAGES = [
    Stage("a", run_a, lambda c: {"x": c.x}),
    Stage("b", run_b, lambda c: {"y": c.y}, needs=("a",)),
    Stage("c", run_c, lambda c: {"items": c.items}, needs=("b",), publish=("c.json",)),
]


@pytest.fixture
def config(tmp_path):
    return ToyConfig(log=str(tmp_path / "calls.log"))


def _run(config, run_dir, executor="local", **kw):
    runner = get_executor(executor)
    try:
        return run_stages(STAGES, config, run_dir, runner, **kw)
    finally:
        runner.close()


def test_first_run_runs_everything_and_publishes(config, tmp_path):
    records = _run(config, tmp_path / "run")
    assert [r.cached for r in records.values()] == [False, False, False]
    assert _calls(config) == ["a", "b", "c", "job:p", "job:q", "job:r"]
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}
    assert all(is_done(r.folder) for r in records.values())
    assert json.loads((tmp_path / "run" / "stages.json").read_text())["c"]["cached"] is False


def test_second_run_reuses_every_stage(config, tmp_path):
    first = _run(config, tmp_path / "run")
    calls = _calls(config)
    second = _run(config, tmp_path / "run")
    assert [r.cached for r in second.values()] == [True, True, True]
    assert _calls(config) == calls
    assert {n: read_marker(r.folder)["finished_at"] for n, r in first.items()} == \
        {n: read_marker(r.folder)["finished_at"] for n, r in second.items()}


def test_changed_field_reruns_only_dependent_stages(config, tmp_path):
    first = _run(config, tmp_path / "run")
    n_before = len(_calls(config))
    second = _run(replace(config, y=20), tmp_path / "run")
    assert second["a"].cached and not second["b"].cached and not second["c"].cached
    assert second["a"].folder == first["a"].folder and second["b"].folder != first["b"].folder
    assert _calls(config)[n_before:] == ["b", "c", "job:p", "job:q", "job:r"]
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 21**2 + 22**2 + 23**2}


def test_crash_mid_stage_resumes_without_redoing_finished_work(config, tmp_path):
    with pytest.raises(RuntimeError, match="planted failure on r"):
        _run(replace(config, fail_on="r"), tmp_path / "run")
    assert _calls(config) == ["a", "b", "c", "job:p", "job:q"]
    records = _run(config, tmp_path / "run")
    assert records["a"].cached and records["b"].cached and not records["c"].cached
    # the finished items p and q are not recomputed; only r runs
    assert _calls(config)[5:] == ["c", "job:r"]
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}


def test_force_named_stage_reruns_it_and_everything_after_it(config, tmp_path):
    _run(config, tmp_path / "run")
    n_before = len(_calls(config))
    records = _run(config, tmp_path / "run", force=["b"])
    assert records["a"].cached and not records["b"].cached and not records["c"].cached
    assert _calls(config)[n_before:] == ["b", "c", "job:p", "job:q", "job:r"]
    assert not any(r.cached for r in _run(config, tmp_path / "run", force="all").values())
    with pytest.raises(ValueError, match="unknown stage 'd'; valid: a, b, c, or all"):
        _run(config, tmp_path / "run", force=["d"])


def test_stage_order_is_checked(config, tmp_path):
    with pytest.raises(ValueError, match="stage 'b' needs \\['a'\\]"):
        run_stages(STAGES[1:], config, tmp_path, get_executor("local"))


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "item"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_unknown_executor_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown executor 'slurm'; known: local, ray"):
        get_executor("slurm")
    assert {"local", "ray"} <= set(EXECUTORS)


def test_ray_executor_fans_out_and_resumes(config, tmp_path):
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(Exception, match="planted failure on q"):
            _run(replace(config, fail_on="q"), tmp_path / "run", executor="ray")
        assert ray.is_initialized()  # a session the executor did not start stays up
        # every job is awaited before the failure is raised, so p and r are finished items now
        assert sorted(_calls(config)[3:]) == ["job:p", "job:r"]
        records = _run(config, tmp_path / "run", executor="ray")
    finally:
        ray.shutdown()
    assert not records["c"].cached
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}
    assert _calls(config)[5:] == ["c", "job:q"]
    # everything cached: the executor never starts a Ray session
    assert all(r.cached for r in _run(config, tmp_path / "run", executor="ray").values())
    assert not ray.is_initialized()


def test_unknown_heldout_cluster_is_named(tmp_path):
    from taskscope.pipeline.config import config_from_dict
    from taskscope.studies.mossa.stages import mossa_stages

    config = config_from_dict({
        "model": "tiny:llama", "tasks": {"options": {"n_instances": 12}, "clusters": ["nli", "sentiment"],
                                         "max_tasks_per_cluster": 1, "n_inputs": 4, "n_train": 4},
        "models": [{"name": "instruction_tuned", "kind": "multitask", "heldout_clusters": ["nlii"]}],
        "layer_map": {"rule": "threshold"}, "baseline_model": "instruction_tuned"})
    stages = [s for s in mossa_stages() if s.name in ("tasks", "experimental")]
    with pytest.raises(ValueError, match=r"models\['instruction_tuned'\].heldout_clusters: \['nlii'\]"):
        run_stages(stages, config, tmp_path, get_executor("local"))


# ---------------------------------------------------------------- code versions, forcing, verified reuse
def run_d(ctx):
    _count(ctx.config.log, "d")
    (ctx.out_dir / "d.txt").write_text((ctx.inputs["a"] / "a.txt").read_text() + "!")


def _branched(version_b: str = "1") -> list[Stage]:
    """a -> b -> c and a -> d: a side branch that does not read b."""
    return [STAGES[0], replace(STAGES[1], version=version_b), STAGES[2],
            Stage("d", run_d, lambda c: {}, needs=("a",), publish=("d.txt",))]


def _ran(config, before: int) -> list[str]:
    return [call for call in _calls(config)[before:] if not call.startswith("job:")]


def test_a_code_version_bump_reruns_exactly_the_stages_downstream_of_it(config, tmp_path):
    runner = get_executor("local")
    run_stages(_branched(), config, tmp_path / "run", runner)
    before = len(_calls(config))
    records = run_stages(_branched(version_b="2"), config, tmp_path / "run", runner)
    assert _ran(config, before) == ["b", "c"]
    assert {n: r.cached for n, r in records.items()} == {"a": True, "b": False, "c": False, "d": True}
    before = len(_calls(config))
    run_stages(_branched(version_b="2"), config, tmp_path / "run", runner)  # the new version is cached in turn
    assert _ran(config, before) == []


def test_force_follows_needs_transitively_and_spares_side_branches(config, tmp_path):
    from taskscope.pipeline.stages import forced_stages

    assert forced_stages(_branched(), ["a"]) == {"a", "b", "c", "d"}
    assert forced_stages(_branched(), "b") == {"b", "c"}
    assert forced_stages(_branched(), ["d"]) == {"d"}
    runner = get_executor("local")
    run_stages(_branched(), config, tmp_path / "run", runner)
    before = len(_calls(config))
    run_stages(_branched(), config, tmp_path / "run", runner, force=["b"])
    assert _ran(config, before) == ["b", "c"]


def test_the_done_marker_lists_the_sha256_of_every_file(config, tmp_path):
    from taskscope.common.files import file_sha256

    records = _run(config, tmp_path / "run")
    marker = read_marker(records["c"].folder)
    assert marker["files"] == {"c.json": file_sha256(records["c"].folder / "c.json")}
    assert set(marker["items"]) == {"p", "q", "r"}
    item = records["c"].folder / "items" / "q"
    assert read_marker(item)["files"]["value.txt"] == file_sha256(item / "value.txt")


def test_an_altered_artifact_reruns_its_stage_and_everything_downstream(config, tmp_path, caplog):
    records = _run(config, tmp_path / "run")
    (records["b"].folder / "b.txt").write_text("11 ")  # still a valid number: silent reuse would be wrong
    before = len(_calls(config))
    with caplog.at_level("WARNING", logger="taskscope.pipeline"):
        again = _run(config, tmp_path / "run")
    assert _ran(config, before) == ["b", "c"] and again["a"].cached
    assert any("stage b: b.txt: sha256 differs" in r.getMessage() for r in caplog.records)
    assert (records["b"].folder / "b.txt").read_text() == "11"
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}


def test_a_truncated_item_file_reruns_that_item_only(config, tmp_path, caplog):
    records = _run(config, tmp_path / "run")
    value = records["c"].folder / "items" / "q" / "value.txt"
    value.write_bytes(value.read_bytes()[:1])
    before = len(_calls(config))
    with caplog.at_level("WARNING", logger="taskscope.pipeline"):
        _run(config, tmp_path / "run")
    assert _calls(config)[before:] == ["c", "job:q"]
    assert any("items/q/value.txt: sha256 differs" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}


def test_a_published_copy_that_was_edited_is_restored(config, tmp_path):
    _run(config, tmp_path / "run")
    (tmp_path / "run" / "c.json").write_text('{"total": 0}')
    _run(config, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "c.json").read_text()) == {"total": 11**2 + 12**2 + 13**2}


# ---------------------------------------------------------------- data hashes in stage keys
@dataclass(frozen=True)
class DataConfig:
    source: str
    other: str
    log: str


def _data_stages() -> list[Stage]:
    from taskscope.pipeline.cache import data_fingerprint

    def read(name):
        def run(ctx):
            _count(ctx.config.log, name)
            (ctx.out_dir / "out.txt").write_text("x")
        return run

    return [Stage("tasks", read("tasks"), lambda c: {"data": data_fingerprint(c.source)}),
            Stage("train", read("train"), lambda c: {}, needs=("tasks",)),
            Stage("text", read("text"), lambda c: {"data": data_fingerprint(c.other)})]


def test_a_changed_data_file_reruns_exactly_what_reads_it(tmp_path):
    folder = tmp_path / "sni"
    folder.mkdir()
    for i in range(20):
        (folder / f"task{i:03d}.json").write_text(json.dumps({"Definition": [f"task {i}"], "Instances": []}))
    (tmp_path / "text.txt").write_text("some text\n")
    config = DataConfig(source=f"sni:{folder}", other=str(tmp_path / "text.txt"), log=str(tmp_path / "calls.log"))
    runner = get_executor("local")
    run_stages(_data_stages(), config, tmp_path / "run", runner)
    before = len(_calls(config))
    run_stages(_data_stages(), config, tmp_path / "run", runner)
    assert _ran(config, before) == []
    (folder / "task007.json").write_text(json.dumps({"Definition": ["an edited definition"], "Instances": []}))
    run_stages(_data_stages(), config, tmp_path / "run", runner)
    assert _ran(config, before) == ["tasks", "train"]
    (tmp_path / "text.txt").write_text("other text\n")
    before = len(_calls(config))
    run_stages(_data_stages(), config, tmp_path / "run", runner)
    assert _ran(config, before) == ["text"]


def test_a_templated_spec_hashes_its_record_files(tmp_path):
    from taskscope.pipeline.cache import data_fingerprint

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "r.jsonl").write_text('{"text": "a", "label": "0"}\n')
    (tmp_path / "spec.yaml").write_text("datasets:\n  - name: t\n    cluster: c\n    records: data/r.jsonl\n"
                                        "    templates: [{input: '{text}', output: '{label}'}]\n")
    first = data_fingerprint(f"templated:{tmp_path / 'spec.yaml'}")
    assert first["n_files"] == 2
    (tmp_path / "data" / "r.jsonl").write_text('{"text": "b", "label": "0"}\n')
    assert data_fingerprint(f"templated:{tmp_path / 'spec.yaml'}")["sha256"] != first["sha256"]
    assert data_fingerprint("builtin")["n_files"] > 0 and data_fingerprint(None) is None
