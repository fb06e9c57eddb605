"""A run folder you can trust: lock, per-attempt records, manifest, temporaries, permissions, clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from taskscope.common.fastpaths import note_fast_path
from taskscope.common.files import atomic_dir, atomic_path, atomic_write_text
from taskscope.pipeline.lock import RunLockedError, run_lock
from taskscope.pipeline.manifest import manifest_table, read_manifest
from taskscope.pipeline.run import ATTEMPTS, clean_run, execute_stages
from taskscope.pipeline.stages import Stage

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Toy:
    name: str = "toy"
    value: int = 3
    fail: bool = False
    device: str = "cpu"
    seed: int = 11
    training: dict | None = None


def item_job(value: int, out_dir: Path) -> None:
    note_fast_path("toy_item_path", used=value % 2 == 0, reason="odd value")
    (Path(out_dir) / "value.txt").write_text(str(value))


def run_make(ctx) -> None:
    note_fast_path("toy_stage_path", used=True)
    ctx.map_items(item_job, {f"i{v}": (v,) for v in range(ctx.config.value)}, "items")
    (ctx.out_dir / "figures").mkdir(exist_ok=True)
    with atomic_path(ctx.out_dir / "figures" / "plot.png") as tmp:
        tmp.write_bytes(b"png")
    (ctx.out_dir / "total.txt").write_text(str(sum(range(ctx.config.value))))


def run_report(ctx) -> None:
    if ctx.config.fail:
        raise RuntimeError("planted failure in the report")
    (ctx.out_dir / "report.txt").write_text((ctx.inputs["make"] / "total.txt").read_text())


STAGES = [Stage("make", run_make, lambda c: {"value": c.value}, publish=("figures", "total.txt")),
          Stage("report", run_report, lambda c: {"fail": c.fail}, needs=("make",), publish=("report.txt",))]


def execute(config: Toy, folder: Path, **kw):
    return execute_stages(STAGES, config, f"value: {config.value}\n", folder, executor="local", force=kw.pop("force", False),
                          executor_options=None, **kw)


# ---------------------------------------------------------------- manifest
def test_every_run_writes_a_manifest_with_its_provenance(tmp_path):
    folder = tmp_path / "run"
    execute(Toy(training={"seed": 5, "dtype": "bfloat16"}), folder)
    manifest = read_manifest(folder)
    assert manifest["status"] == "succeeded" and manifest["schema"] == 1
    assert manifest["packages"]["torch"] == torch.__version__.split("+")[0] or \
        manifest["packages"]["torch"] == torch.__version__
    assert manifest["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["seeds"] == {"seed": 11, "training.seed": 5} and manifest["dtypes"] == {"training.dtype": "bfloat16"}
    assert manifest["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert manifest["device"]["resolved"] == "cpu"
    head = subprocess.run(["git", "-C", str(SRC), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert manifest["taskscope"]["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    # fast paths: three items (one even value of 0, 1, 2 takes the path... 0 and 2) plus the stage's own decision
    assert manifest["fast_paths"] == {"toy_item_path": {"used": 2, "skipped": {"odd value": 1}},
                                      "toy_stage_path": {"used": 1, "skipped": {}}}
    stages = {stage["name"]: stage for stage in manifest["stages"]}
    assert json.loads((folder / "stages" / stages["make"]["folder"] / "items" / "i1" /
                       "_fast_paths.json").read_text()) == {"toy_item_path": {"used": 0, "skipped": {"odd value": 1}}}
    assert [(s["name"], s["cached"]) for s in manifest["stages"]] == [("make", False), ("report", False)]

    execute(Toy(training={"seed": 5, "dtype": "bfloat16"}), folder)  # all cached: records come from the markers
    again = read_manifest(folder)
    assert [s["cached"] for s in again["stages"]] == [True, True]
    assert again["fast_paths"] == manifest["fast_paths"]
    assert again["stages"][0]["compute_seconds"] == manifest["stages"][0]["compute_seconds"]
    table = manifest_table(again)
    assert list(table.columns) == ["section", "name", "value"]
    assert "not taken 1x odd value" in table.set_index("name").loc["toy_item_path", "value"]


# ---------------------------------------------------------------- run record
def test_a_failed_run_keeps_the_record_of_the_last_successful_one(tmp_path):
    folder = tmp_path / "run"
    execute(Toy(), folder)
    record, manifest = (folder / "study.yaml").read_text(), (folder / "manifest.json").read_text()
    with pytest.raises(RuntimeError, match="planted failure"):
        execute(Toy(value=4, fail=True), folder)
    assert (folder / "study.yaml").read_text() == record == "value: 3\n"
    assert (folder / "manifest.json").read_text() == manifest
    attempts = sorted((folder / ATTEMPTS).iterdir())
    assert len(attempts) == 2
    failed = json.loads((attempts[-1] / "manifest.json").read_text())
    assert failed["status"] == "failed" and [s["name"] for s in failed["stages"]] == ["make"]
    assert (attempts[-1] / "study.yaml").read_text() == "value: 4\n"


# ---------------------------------------------------------------- temporaries
def test_temporaries_of_a_killed_run_are_removed_and_never_published(tmp_path):
    folder = tmp_path / "run"
    execute(Toy(value=2), folder)
    make = next((folder / "stages").glob("make-*"))
    (make / "_done.json").unlink()  # as if killed before the stage finished ...
    (make / "figures" / ".plot.png.abc123.tmp").write_bytes(b"")  # ... while a figure was being written
    orphan = make / "items" / ".i9.xyz.tmp"  # an item job's temporary folder (e.g. few-shot adapters)
    (orphan / "lora").mkdir(parents=True)
    (folder / ".report.txt.q1.tmp").write_text("half")
    execute(Toy(value=2), folder)
    assert not orphan.exists() and not (folder / ".report.txt.q1.tmp").exists()
    assert sorted(p.name for p in (folder / "figures").iterdir()) == ["plot.png"]
    assert not list(folder.rglob("*.tmp"))


def test_atomic_writes_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
    old = os.umask(0o002)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o664


def test_published_tables_are_readable_by_the_group_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        execute(Toy(), tmp_path / "run")
    finally:
        os.umask(old)
    for name in ("total.txt", "report.txt", "manifest.json", "study.yaml", "figures/plot.png"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


# ---------------------------------------------------------------- lock
HOLDER = textwrap.dedent("""
    import sys, time
    from taskscope.pipeline.lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_run_on_a_locked_folder_stops_and_a_killed_holder_leaves_a_stale_lock(tmp_path, caplog):
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by pid {holder.pid} on "):
            execute(Toy(), folder)
        with pytest.raises(RunLockedError):
            execute(Toy(), folder, lock_wait=0.5)  # waiting gives up after the given time
        assert not (folder / "stages").exists()  # nothing was touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with caplog.at_level("WARNING", logger="taskscope.pipeline"):
        execute(Toy(), folder)
    assert any(f"stale lock of pid {holder.pid}" in r.getMessage() for r in caplog.records)
    with run_lock(folder):  # released after the run; the record is empty again
        assert (folder / ".run.lock").read_text().count(str(os.getpid())) == 1


# ---------------------------------------------------------------- clean
def test_clean_lists_then_removes_superseded_stage_folders(tmp_path):
    from typer.testing import CliRunner

    from taskscope.cli import app

    folder = tmp_path / "run"
    execute(Toy(value=2), folder)
    old = {p.name for p in (folder / "stages").iterdir()}
    execute(Toy(value=3), folder)
    current = {p.name for p in (folder / "stages").iterdir()} - old
    assert {Path(p).name for p in clean_run(folder)} == old and len(current) == 2

    dry = CliRunner().invoke(app, ["clean", str(folder)])
    assert dry.exit_code == 0, dry.output
    assert "would remove 2 superseded stage folder(s)" in dry.output and "--yes" in dry.output
    assert {p.name for p in (folder / "stages").iterdir()} == old | current
    done = CliRunner().invoke(app, ["clean", str(folder), "--yes"])
    assert done.exit_code == 0 and "removed 2 superseded" in done.output
    assert {p.name for p in (folder / "stages").iterdir()} == current
    assert all(info["cached"] for info in json.loads((folder / "stages.json").read_text()).values()) is False
    execute(Toy(value=3), folder)  # the run is still whole
    assert all(info["cached"] for info in json.loads((folder / "stages.json").read_text()).values())


def test_clean_without_a_finished_run_says_so(tmp_path):
    from typer.testing import CliRunner

    from taskscope.cli import app

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["clean", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no stages.json" in result.output


# ---------------------------------------------------------------- CLI --force
def test_run_force_accepts_stage_names_and_rejects_unknown_ones():
    from typer.testing import CliRunner

    from taskscope.cli import app
    from taskscope.pipeline.stages import forced_stages
    from taskscope.studies.mossa.stages import mossa_stages

    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    result = CliRunner().invoke(app, ["run", str(tiny), "--force", "reprot"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --force: unknown stage 'reprot'; valid: tasks, controls, control_scores, experimental, extract, "
        "similarity, ceiling, analysis, report, or all"]
    missing = CliRunner().invoke(app, ["run", str(tiny.parent / "no_such.yaml"), "--force", "report"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and "no_such.yaml" in missing.output
    assert forced_stages(mossa_stages(), ["report"]) == {"report"}
    assert forced_stages(mossa_stages(), ["extract"]) == {"extract", "similarity", "ceiling", "analysis", "report"}
    assert forced_stages(mossa_stages(), ["controls", "all"]) == {s.name for s in mossa_stages()}


# ---------------------------------------------------------------- CLI: one-line errors of the run folder
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: ") and "--debug" not in lines[0], lines[0]
    return lines[0]


def test_a_run_on_a_locked_folder_is_a_one_line_cli_error_and_a_traceback_with_debug(tmp_path):
    from typer.testing import CliRunner

    from taskscope.cli import app

    folder = tmp_path / "run"
    with run_lock(folder):  # a second open file description of the lock file: held against this process too
        line = _one_error_line(CliRunner().invoke(app, ["run", str(TINY), "--run-dir", str(folder)]))
        assert f"run folder {folder} is in use by pid {os.getpid()}" in line
        forced = CliRunner().invoke(app, ["run", str(TINY), "--run-dir", str(folder), "--force", "report"])
        assert "is in use by pid" in _one_error_line(forced)
        assert "is in use by pid" in _one_error_line(CliRunner().invoke(app, ["clean", str(folder)]))
        debug = CliRunner().invoke(app, ["--debug", "run", str(TINY), "--run-dir", str(folder)])
        assert debug.exit_code != 0 and isinstance(debug.exception, RunLockedError)
    assert not (folder / "stages").exists()  # refused before any work


def test_clean_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from taskscope.cli import app

    assert "no run folder at" in _one_error_line(CliRunner().invoke(app, ["clean", str(tmp_path / "absent")]))
    folder = tmp_path / "run"
    (folder / "stages").mkdir(parents=True)
    (folder / "stages.json").write_text("{")  # a record cut short
    line = _one_error_line(CliRunner().invoke(app, ["clean", str(folder), "--yes"]))
    assert f"{folder / 'stages.json'}: unreadable" in line
    (folder / "stages.json").write_text("[1, 2]")  # valid JSON, not a stage record
    assert "stages.json: unreadable" in _one_error_line(CliRunner().invoke(app, ["clean", str(folder)]))
