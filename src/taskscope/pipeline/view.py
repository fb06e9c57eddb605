"""`RunView`: a finished run folder read back from Python, the base of every study kind's view.

A view exposes ``tables`` (DataFrames by name, read on first use; the names are the kind's expected tables),
``config`` (the resolved config of the last successful run, validated as its kind), ``manifest``, ``stages``,
``report_path``, ``figures`` and, through :meth:`RunView.items_with`, any per-item artifact of its stages.
:func:`taskscope.pipeline.run.open_run` picks the view of the folder's study kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from taskscope.pipeline.config import StudyConfigBase, config_from_dict
from taskscope.pipeline.manifest import MANIFEST_FILE

class RunTables(Mapping[str, pd.DataFrame]):
    """``run.tables["mossa"]`` reads ``run_dir/mossa.csv`` (once) as a DataFrame; ``names`` are the tables listed."""

    def __init__(self, run_dir: Path, names: Sequence[str]):
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


class Artifacts(Mapping[str, Any]):
    """Named files of a run: ``stage/item`` keys (``controls/qa_capitals``), also reachable by the bare item
    name when only one stage has it (``run.models["qa_capitals"]``).  Values are made by ``value(folder)``."""

    def __init__(self, entries: dict[str, Path], value: Any = lambda path: path):
        self._entries = entries
        self._value = value

    def _key(self, name: str) -> str:
        if name in self._entries:
            return name
        matches = [key for key in self._entries if key.split("/", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        hint = f"it is ambiguous: {matches}" if matches else f"known: {list(self._entries)}"
        raise KeyError(f"no artifact {name!r}; {hint}")

    def __getitem__(self, name: str) -> Any:
        return self._value(self._entries[self._key(name)])

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Artifacts({list(self._entries)})"


class RunView:
    """A run folder read back (module docstring); each study kind's view (``STUDIES[kind].view``) extends it with
    its own artifacts."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"no run folder at {self.run_dir}")

    @cached_property
    def tables(self) -> RunTables:
        """The tables the run's study kind writes (``expected_tables``), as DataFrames by name."""
        from taskscope.pipeline.kinds import STUDIES

        return RunTables(self.run_dir, STUDIES.lookup(self.config.study).expected_tables(self.config))

    def items_with(self, filename: str, value: Callable[[Path], Any] = lambda path: path) -> Artifacts:
        """``stage/item -> value(item folder)`` for the items of the last run's stages that hold ``filename``."""
        stages = self.stages if (self.run_dir / "stages.json").is_file() else {}
        return Artifacts({f"{stage}/{item.name}": item for stage, info in stages.items()
                          for item in sorted((self.run_dir / info["folder"] / "items").glob("*"))
                          if (item / filename).is_file()}, value)

    @property
    def figures(self) -> Artifacts:
        """The report's figure files by name (``cluster_curves_linear.png``), each a Path."""
        return Artifacts({p.name: p for p in sorted(self.figures_dir.glob("*")) if p.is_file()}
                         if self.figures_dir.is_dir() else {})

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def figures_dir(self) -> Path:
        return self.run_dir / "figures"

    @cached_property
    def config(self) -> StudyConfigBase:
        """The resolved config of the last successful run (``study.yaml``), validated as its study kind."""
        path = self.run_dir / "study.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir} is not a finished run folder: it has no study.yaml")
        return config_from_dict(yaml.safe_load(path.read_text()), str(path))

    @property
    def manifest(self) -> dict[str, Any]:
        """Provenance of the last successful run (``manifest.json``, see :mod:`taskscope.pipeline.manifest`)."""
        return json.loads((self.run_dir / MANIFEST_FILE).read_text())

    @property
    def stages(self) -> dict[str, Any]:
        """What the last run did per stage: key, folder, ``cached`` and seconds (``stages.json``)."""
        return json.loads((self.run_dir / "stages.json").read_text())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.run_dir)!r})"
