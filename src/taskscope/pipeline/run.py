"""`run_study`: run (or resume) a study into a run folder; `Run`: read a run folder back from Python.

Order of operations in :func:`run_study`:

1. resolve the config (``None`` -> the quickstart preset, a path -> read and dispatched on its ``study:``
   key; a transfer study goes on in :func:`taskscope.pipeline.transfer_study.run_transfer_study`);
2. resolve the run folder (``run_dir`` or ``config.output_dir / config.name``), write ``study.yaml``
   there and attach the log file ``logs/run.log``;
3. run the stages of :func:`~taskscope.pipeline.study.study_stages` through the chosen executor
   (cached stages are reused, see :mod:`taskscope.pipeline.stages`);
4. return a :class:`Run` over the folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from taskscope.analysis.layer_map import LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.pipeline.config import CONFIG_DIR, StudyConfig, dump_config, load_config
from taskscope.pipeline.executors.base import get_executor
from taskscope.pipeline.progress import attach_log_file, detach_log_file
from taskscope.pipeline.stages import Stage, run_stages
from taskscope.pipeline.transfer_config import TransferStudyConfig, load_study_config

TABLES = ("mossa", "layer_summary", "cluster_summary", "differences", "controls", "ceiling", "ceiling_comparison")
QUICKSTART = CONFIG_DIR / "quickstart.yaml"


class RunTables(Mapping[str, pd.DataFrame]):
    """``run.tables["mossa"]`` reads ``run_dir/mossa.csv`` (once) as a DataFrame; ``names`` are the tables listed."""

    def __init__(self, run_dir: Path, names: Sequence[str] = TABLES):
        self._run_dir = run_dir
        self._names = tuple(names)
        self._cache: dict[str, pd.DataFrame] = {}

    def _path(self, name: str) -> Path:
        return self._run_dir / f"{name}.csv"

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            if not self._path(name).is_file():
                raise KeyError(f"run {self._run_dir} has no table {name!r}; it has {list(self)}")
            self._cache[name] = pd.read_csv(self._path(name))
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._names if self._path(name).is_file())

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Run:
    """A run folder: ``tables`` (pandas), ``layer_map``, ``report_path``, ``config``, ``stages``."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"no run folder at {self.run_dir}")
        self.tables: RunTables = RunTables(self.run_dir)

    @cached_property
    def layer_map(self) -> LayerMap:
        return LayerMap.from_dict(json.loads((self.run_dir / "layer_map.json").read_text()))

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def figures_dir(self) -> Path:
        return self.run_dir / "figures"

    @cached_property
    def config(self) -> StudyConfig:
        return load_config(self.run_dir / "study.yaml")

    @property
    def stages(self) -> dict[str, Any]:
        """What the last run did per stage: key, folder, ``cached`` and seconds (``stages.json``)."""
        return json.loads((self.run_dir / "stages.json").read_text())

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r})"


def resolve_config(config: StudyConfig | TransferStudyConfig | str | Path | None) -> StudyConfig | TransferStudyConfig:
    """``None`` -> the quickstart preset; a config object as it is; a path -> read and dispatched on ``study:``."""
    if config is None:
        return load_config(QUICKSTART)
    if isinstance(config, (StudyConfig, TransferStudyConfig)):
        return config
    return load_study_config(config)


def execute_stages(stages: Sequence[Stage], study: Any, study_yaml: str, folder: Path, *, executor: str,
                   force: bool | Sequence[str], executor_options: dict | None) -> None:
    """Steps 2-3 shared by every study kind: write ``study.yaml``, attach the log, run the stages, clean up."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "study.yaml", study_yaml)
    handler = attach_log_file(folder)
    runner = get_executor(executor, **(executor_options or {}))
    try:
        run_stages(stages, study, folder, runner, force=force)
    finally:
        runner.close()
        detach_log_file(handler)


def run_study(config: StudyConfig | str | Path | None = None, run_dir: str | Path | None = None, *,
              executor: str = "local", force: bool | Sequence[str] = False,
              executor_options: dict | None = None, stages: Sequence[Stage] | None = None) -> Run:
    """Run (or resume) a MOSSA study and return its :class:`Run`; ``None`` runs the quickstart preset.

    ``force=True`` reruns every stage, a list of stage names reruns those (and, being new work, nothing
    else: their dependants are rerun only if their outputs' keys change).  ``stages`` overrides the
    stage list (default: :func:`taskscope.pipeline.study.study_stages`).
    """
    from taskscope.pipeline.study import study_stages

    study = resolve_config(config)
    if isinstance(study, TransferStudyConfig):
        from taskscope.pipeline.transfer_study import run_transfer_study

        return run_transfer_study(study, run_dir, executor=executor, force=force, executor_options=executor_options)
    folder = Path(run_dir) if run_dir is not None else study.output_dir / study.name
    execute_stages(stages if stages is not None else study_stages(), study, dump_config(study), folder,
                   executor=executor, force=force, executor_options=executor_options)
    return Run(folder)


def run_command(
    config: Annotated[Path | None, typer.Argument(help="study YAML (default: the quickstart preset)")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="run folder (default: OUTPUT_DIR/NAME)")] = None,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    force: Annotated[bool, typer.Option(help="rerun every stage")] = False,
) -> Run:
    """Body of ``taskscope run [CONFIG.yaml] [--run-dir DIR] [--executor local|ray] [--force]``.

    Typer reads the parameters from this signature (attach with ``app.command("run")(run_command)``);
    it prints where the report is.
    """
    from rich import print as rich_print

    run = run_study(config, run_dir, executor=executor, force=force)
    rich_print(f"report: {run.report_path}\ntables: {', '.join(sorted(run.tables))} in {run.run_dir}")
    return run
