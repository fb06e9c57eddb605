"""The study registry: every study kind by the ``study:`` id of its YAML (``mossa``, the default, and ``transfer``).

A :class:`StudyKind` declares what the engine needs to run, validate, open and report any study:

* ``id`` (the ``study:`` value) and ``config_model`` (a pydantic subclass of
  :class:`~taskscope.pipeline.config.StudyConfigBase`);
* ``stages(config) -> list[Stage]`` in run order, and ``report`` (the run function of its ``report`` stage, what
  ``taskscope report RUN`` runs again);
* ``view`` (the :class:`~taskscope.pipeline.view.RunView` subclass :func:`~taskscope.pipeline.run.open_run`
  returns) and ``expected_tables(config)`` (the tables a run of the config writes);
* ``plugin_problems(config)`` and ``task_problems(config)``: what the config's pydantic model cannot check alone
  (plug-in names against their registries; task names against the loaded task source), see
  :mod:`taskscope.pipeline.validate`;
* ``renamed``: old dotted keys and their new names, so an old config fails with one line naming the new key;
* ``presets_dir``: a folder of preset YAML files a plug-in kind ships (``taskscope configs list`` lists them, and a
  bare preset name finds them, after the bundled ``configs/`` that hold the built-in kinds' presets).

The engine never imports a study package: :data:`STUDIES` names the built-in kinds by module path
(``taskscope.studies.mossa``, ``taskscope.studies.transfer``), imported on first lookup, and third-party kinds
come from the entry-point group ``taskscope.studies`` (``toy = "my_pkg.toy:TOY"``, a :class:`StudyKind`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskscope.registry import Registry

if TYPE_CHECKING:
    from taskscope.pipeline.stages import Stage, StageContext
    from taskscope.pipeline.validate import Problem
    from taskscope.pipeline.view import RunView

DEFAULT_STUDY = "mossa"  # the kind of a config without a ``study:`` key


def _no_problems(config: Any) -> list[Problem]:
    return []


@dataclass(frozen=True)
class StudyKind:
    """One study kind (module docstring); registered with :func:`register_study`."""

    id: str
    config_model: type
    stages: Callable[[Any], list[Stage]]
    view: type[RunView]
    expected_tables: Callable[[Any], list[str]]
    report: Callable[[StageContext], None]
    plugin_problems: Callable[[Any], list[Problem]] = _no_problems
    task_problems: Callable[[Any], list[Problem]] = _no_problems
    renamed: Mapping[str, str] = field(default_factory=dict)
    presets_dir: Path | None = None

    @property
    def Params(self) -> type:  # noqa: N802 - the registry's name for a member's parameter model
        """A study kind's parameters are its config (``Registry.params_model`` / ``check_params``)."""
        return self.config_model


STUDIES: Registry[StudyKind] = Registry(
    "study kind", entry_point_group="taskscope.studies",
    builtin_modules=("taskscope.studies.mossa", "taskscope.studies.transfer"),
)


def register_study(kind: StudyKind) -> StudyKind:
    """Add ``kind`` to :data:`STUDIES` under its ``id``; returns it (for ``KIND = register_study(StudyKind(...))``)."""
    STUDIES.add(kind.id, kind)
    return kind
