"""`run_study`: run (or resume) a study of any kind into a run folder; `open_run`: read one back from Python.

Order of operations in :func:`run_study`:

1. resolve the config (``None`` -> the quickstart preset, a path -> read and validated as the study kind its
   ``study:`` key names, :func:`~taskscope.pipeline.config.load_config`), then check it against the registries
   and the task source (:mod:`taskscope.pipeline.validate`), so a misspelt plug-in or task name fails before
   any work;
2. resolve the run folder (``run_dir`` or ``config.output_dir / config.name``); then, in
   :func:`execute_stages`: take the folder's lock (:mod:`taskscope.pipeline.lock`; a second run on the folder
   stops with a message naming the first), remove temporaries a killed run left, record this attempt's
   config in ``attempts/{n:04d}-{UTC time}-pid{pid}/study.yaml`` and attach the log file ``logs/run.log``;
3. run the stages of the kind (``STUDIES[kind].stages(config)``, :mod:`taskscope.pipeline.kinds`) through the
   chosen executor (verified cached stages are reused, see :mod:`taskscope.pipeline.stages`);
4. write the attempt's ``manifest.json`` (:mod:`taskscope.pipeline.manifest`; status ``succeeded`` or
   ``failed``); only when the run succeeded are ``study.yaml`` and ``manifest.json`` of the run folder
   replaced, so they always describe the tables beside them;
5. return the kind's run view over the folder (``STUDIES[kind].view``, a :class:`~taskscope.pipeline.view.RunView`).

:func:`superseded_stages` / :func:`clean_run` find and remove stage folders the last successful run did not use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from taskscope.common.files import atomic_write_text, remove_temporaries
from taskscope.pipeline.cache import is_done
from taskscope.pipeline.config import (
    CONFIG_DIR,
    StudyConfigBase,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    preset_path,
    presets,
)
from taskscope.pipeline.executors.base import get_executor
from taskscope.pipeline.kinds import DEFAULT_STUDY, STUDIES, StudyKind
from taskscope.pipeline.lock import run_lock
from taskscope.pipeline.manifest import MANIFEST_FILE, build_manifest, write_manifest
from taskscope.pipeline.progress import attach_log_file, detach_log_file, logger
from taskscope.pipeline.stages import Stage, StageContext, StageRecord, forced_stages, run_stages
from taskscope.pipeline.validate import validate_study
from taskscope.pipeline.view import RunView

QUICKSTART = CONFIG_DIR / "quickstart.yaml"


def study_kind(run_dir: str | Path) -> str:
    """The ``study:`` kind of a run folder, from its ``study.yaml`` (no key: ``mossa``)."""
    path = Path(run_dir) / "study.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished run folder: it has no study.yaml")
    data = yaml.safe_load(path.read_text())
    return data.get("study", DEFAULT_STUDY) if isinstance(data, dict) else DEFAULT_STUDY


def open_run(run_dir: str | Path) -> RunView:
    """The run view of any study's run folder: ``STUDIES[kind].view`` of the kind its ``study.yaml`` names."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir}")
    kind = study_kind(run_dir)
    if kind not in STUDIES:
        raise ValueError(f"{run_dir}/study.yaml: unknown study kind {kind!r}; {STUDIES.suggestion(kind)}")
    return STUDIES.lookup(kind).view(run_dir)


def compare_run_folders(run_a: str | Path, run_b: str | Path, out_dir: str | Path | None = None) -> Path:
    """Compare two MOSSA run folders (``taskscope.report.compare``) into ``out_dir`` (default:
    ``RUN_A/compare/<name of RUN_B>``); returns the path of ``compare.html``."""
    from taskscope.report.compare import compare_runs

    for folder in (run_a, run_b):
        if study_kind(folder) != "mossa":
            raise ValueError(f"{folder}: compare takes MOSSA runs; this is a {study_kind(folder)} study")
    out = Path(out_dir) if out_dir is not None else Path(run_a) / "compare" / Path(run_b).resolve().name
    return compare_runs(open_run(run_a), open_run(run_b), out)


def report_stage(kind: str) -> Stage:
    """The ``report`` stage of a registered study kind (what :func:`rebuild_report` runs again)."""
    return Stage("report", STUDIES.lookup(kind).report, lambda c: {})


def rebuild_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and ``figures/`` again from a finished run's stored tables; recomputes nothing.

    Order: open the run (its ``study.yaml`` and ``stages.json``); hand the report stage of its kind the stage
    folders the last successful run used as inputs; write into ``out_dir`` (default: the run folder, beside the
    tables).  For a report after a taskscope update, or restyled figures; returns the report's path.
    """
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir
    inputs = {name: run.run_dir / info["folder"] for name, info in run.stages.items()}
    records = {name: StageRecord(name, info["key"], run.run_dir / info["folder"], True, info.get("seconds", 0.0))
               for name, info in run.stages.items() if name != "report"}
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(config=run.config, out_dir=out, inputs=inputs, executor=get_executor("local"),
                       run_dir=run.run_dir, records=records)
    report_stage(run.config.study).run(ctx)
    return out / "report.html"


def resolve_config(config: StudyConfigBase | str | Path | None, overrides: Sequence[str] = ()) -> StudyConfigBase:
    """``None`` -> the quickstart preset; a config object as it is; a path or preset name -> read and validated as
    its kind.  ``overrides`` (``a.b=v``) apply to the file's mapping (or the object's fields) before validation."""
    if isinstance(config, StudyConfigBase):
        if not overrides:
            return config
        return config_from_dict(apply_overrides(config.model_dump(mode="json"), overrides), "<config object>")
    return load_config(QUICKSTART if config is None else config, overrides)


def kind_of(config: StudyConfigBase) -> StudyKind:
    """The registered study kind of a validated config."""
    return STUDIES.lookup(config.study)


ATTEMPTS = "attempts"


def execute_stages(stages: Sequence[Stage], study: Any, study_yaml: str, folder: Path, *, executor: str,
                   force: bool | str | Sequence[str], executor_options: dict | None,
                   lock_wait: float = 0.0, overrides: Sequence[str] = ()) -> dict[str, StageRecord]:
    """Steps 2-4 shared by every study kind (see the module docstring); returns the stage records."""
    forced_stages(stages, force)  # an unknown stage name fails before anything is touched
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder, wait=lock_wait):
        stale = remove_temporaries(folder)
        started = time.time()
        attempt = folder / ATTEMPTS / (f"{_count_attempts(folder) + 1:04d}-"
                                       + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)) + f"-pid{os.getpid()}")
        atomic_write_text(attempt / "study.yaml", study_yaml)
        handler = attach_log_file(folder)
        if stale:
            logger.info("removed %d unfinished temporary file(s) of an earlier run: %s", len(stale),
                        ", ".join(str(p.relative_to(folder)) for p in stale[:5]))
        runner = get_executor(executor, **(executor_options or {}))
        records: dict[str, StageRecord] = {}
        status = "failed"
        try:
            records = run_stages(stages, study, folder, runner, force=force, on_stage=records.__setitem__)
            status = "succeeded"
        finally:
            runner.close()
            manifest = build_manifest(study, records, status=status, started_at=started)
            manifest["overrides"] = list(overrides)  # the --set items (study.yaml holds their result)
            write_manifest(attempt / MANIFEST_FILE, manifest)
            if status == "succeeded":
                atomic_write_text(folder / "study.yaml", study_yaml)
                write_manifest(folder / MANIFEST_FILE, manifest)
            else:
                logger.error("run failed; study.yaml and manifest.json keep describing the last successful run "
                             "(this attempt: %s)", attempt.relative_to(folder))
            detach_log_file(handler)
    return records


def _count_attempts(folder: Path) -> int:
    root = folder / ATTEMPTS
    return sum(1 for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0


def config_source(config: Any) -> str:
    """How messages name a config: its path (a preset name: the preset's file), or ``<config object>``."""
    return str(QUICKSTART if config is None else preset_path(config) if isinstance(config, (str, Path))
               else "<config object>")


def run_study(config: StudyConfigBase | str | Path | None = None, run_dir: str | Path | None = None, *,
              executor: str = "local", force: bool | str | Sequence[str] = False,
              executor_options: dict | None = None, stages: Sequence[Stage] | None = None,
              overrides: Sequence[str] = ()) -> RunView:
    """Run (or resume) a study of any kind and return its run view (:func:`open_run`); ``None`` runs the
    quickstart preset.

    ``overrides`` are ``a.b=v`` settings applied before validation (listed in the manifest).

    ``force=True`` (or ``"all"``) reruns every stage; a stage name or list of names reruns those and every
    stage downstream of them.  A run folder another run holds raises
    :class:`~taskscope.pipeline.lock.RunLockedError`.  ``stages`` overrides the stage list (default: the kind's,
    ``STUDIES[kind].stages(config)``).
    """
    study = resolve_config(config, overrides)
    validate_study(study, source=config_source(config), executor=executor)  # plug-ins, paths, task names
    kind = kind_of(study)
    folder = Path(run_dir) if run_dir is not None else study.output_dir / study.name
    execute_stages(stages if stages is not None else kind.stages(study), study, dump_config(study), folder,
                   executor=executor, force=force, executor_options=executor_options, overrides=overrides)
    return kind.view(folder)


Overrides = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="set one config field, e.g. --set tasks.n_inputs=32 (repeatable; the value "
    "is YAML: 3, null, a flow list)")]


def run_command(
    config: Annotated[Path | None, typer.Argument(
        help=f"study YAML or a bundled preset name ({', '.join(presets(kinds=False))}; see `taskscope configs list`); "
        "default: quickstart", show_default=False)] = None,
    run_dir: Annotated[Path | None, typer.Option(help="run folder (default: OUTPUT_DIR/NAME)")] = None,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    force: Annotated[list[str] | None, typer.Option(
        "--force", metavar="STAGE", help="rerun STAGE and every stage after it that reads it (repeatable); "
        "'all' reruns everything")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only check the config (see `taskscope config "
                                          "validate`) and exit")] = False,
    overrides: Overrides = None,
) -> RunView | None:
    """Body of ``taskscope run [CONFIG.yaml] [--run-dir DIR] [--executor local|ray] [--force STAGE|all ...]
    [--dry-run]``.

    Typer reads the parameters from this signature (attach with ``app.command("run")(run_command)``);
    it prints where the report is.
    """
    from rich import print as rich_print

    overrides = overrides or []
    if dry_run:
        study = resolve_config(config, overrides)
        validate_study(study, source=config_source(config), executor=executor)
        rich_print(f"config {config_source(config)} is valid; nothing was run")
        return None
    if force:
        _check_force_option(config, force, overrides)
    run = run_study(config, run_dir, executor=executor, force=force or False, overrides=overrides)
    rich_print(f"report: {run.report_path}\ntables: {', '.join(sorted(run.tables))} in {run.run_dir}")
    return run


def _check_force_option(config: Path | None, force: list[str], overrides: Sequence[str] = ()) -> None:
    """Reject unknown ``--force`` stage names before any work, listing the valid ones."""
    study = resolve_config(config, overrides)
    forced_stages(kind_of(study).stages(study), force)  # ValueError "--force: unknown stage ...": one line


# ---------------------------------------------------------------- clean
def superseded_stages(run_dir: str | Path) -> list[Path]:
    """Stage folders of ``run_dir`` the last successful run (``stages.json``) did not use.

    Unfinished folders newer than that record are kept: they are the resumable work of a later attempt.
    """
    run_dir = Path(run_dir)
    record = run_dir / "stages.json"
    if not record.is_file():
        raise FileNotFoundError(f"{run_dir} has no stages.json: no run finished there, so nothing is known "
                                "to be superseded")
    try:
        used = {Path(info["folder"]).name for info in json.loads(record.read_text()).values()}
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
        raise ValueError(f"{record}: unreadable ({type(err).__name__}: {err}); rerun the study to rewrite it "
                         "before cleaning") from None
    finished_at = record.stat().st_mtime
    root = run_dir / "stages"
    return [folder for folder in sorted(root.iterdir()) if folder.is_dir() and folder.name not in used
            and (is_done(folder) or folder.stat().st_mtime <= finished_at)] if root.is_dir() else []


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def clean_run(run_dir: str | Path, *, delete: bool = False) -> dict[Path, int]:
    """The superseded stage folders of ``run_dir`` with their sizes in bytes; removed (with leftover
    temporaries) when ``delete``.  Holds the run folder's lock, so it never deletes under a running study."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir}")
    with run_lock(run_dir):
        folders = {folder: folder_size(folder) for folder in superseded_stages(run_dir)}
        if delete:
            for folder in folders:
                shutil.rmtree(folder)
            remove_temporaries(run_dir)
    return folders
