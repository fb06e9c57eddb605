"""Config sections every study kind shares: the compared models, the task source, split shares, prompt formats, the
report.

:class:`ModelStudyConfig` is the base of a study that compares a base model (``kind: pretrained``) with models
instruction-tuned from it (``kind: multitask``): its ``models`` (names unique; by default ``pretrained`` and
``instruction_tuned``) and ``report``; each kind adds its typed ``instruction_tuning`` (a
`taskscope.train.config.TrainConfig`) and ``prompt_format`` (:data:`PromptFormatField`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from taskscope.pipeline.config import FolderName, Strict, StudyConfigBase
from taskscope.tasks.formats import PromptFormat, resolve_format

ModelKind = Literal["pretrained", "multitask"]


class ModelEntry(Strict):
    """A compared model: the pre-trained base, or the base instruction-tuned on the study's (seen) tasks."""

    name: FolderName = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ModelKind


def default_models(entry: type[ModelEntry]) -> list[Any]:
    """The papers' comparison: the pre-trained base and the base instruction-tuned on every (seen) task."""
    return [entry(name="pretrained", kind="pretrained"), entry(name="instruction_tuned", kind="multitask")]


class TaskSource(Strict):
    """Where the tasks come from and which of them a study keeps (``tasks`` in order, or ``clusters``)."""

    source: str = "builtin"  # a task-source spec for taskscope.tasks.load_suite
    options: dict[str, Any] = Field(default_factory=dict)  # keyword options of the source
    tasks: list[str] | None = None  # keep only these (in this order)
    clusters: list[str] | None = None  # keep only tasks in these clusters
    seed: int = 0


def count_or_fraction(value: int | float, where: str) -> int | float:
    """A split share: a count >= 0, or a fraction in [0, 1) of the task's instances."""
    if isinstance(value, float) and not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: a fraction must lie in [0, 1), got {value}")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{where}: a count must be >= 0, got {value}")
    return value


def prompt_format_field(**defaults: Any) -> Any:
    """A ``PromptFormat`` config field read as ``resolve_format`` reads it: `PromptFormat` fields, optionally
    ``format: <named format>`` to start from; ``defaults`` (e.g. ``n_exemplars=3``) fill what the config leaves
    unset."""
    return Annotated[PromptFormat, BeforeValidator(lambda value: resolve_format(value, **defaults))]


PromptFormatField = prompt_format_field()


class ReportConfig(Strict):
    title: str | None = None
    figure_formats: list[Literal["png", "pdf"]] = Field(default_factory=lambda: ["png", "pdf"])


class ModelStudyConfig(StudyConfigBase):
    """A study comparing the base ``model`` with models trained from it (module docstring)."""

    models: list[ModelEntry] = Field(default_factory=lambda: default_models(ModelEntry), min_length=1)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in value]
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _named_models_exist(self) -> ModelStudyConfig:
        names = self.model_names()
        for where, name in self.named_models().items():
            if name is not None and name not in names:
                raise ValueError(f"{where} {name!r} is not one of the models {names}")
        return self

    def named_models(self) -> dict[str, str | None]:
        """Fields that name one of ``models`` (dotted field -> name), checked at load time."""
        return {}

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def model_named(self, name: str) -> ModelEntry:
        return next(m for m in self.models if m.name == name)

    def multitask_models(self) -> list[str]:
        return [m.name for m in self.models if m.kind == "multitask"]
