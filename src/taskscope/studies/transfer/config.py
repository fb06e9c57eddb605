"""`TransferConfig`: the transfer study of Mueller, Dredze and Andrews as one validated YAML config.

A config carries ``study: transfer`` and is read and validated through the engine
(:func:`taskscope.pipeline.config.load_config`); validation errors become a
:class:`~taskscope.pipeline.config.ConfigError` naming the file and every bad field by its dotted path
(``fewshot.shots.0: Input should be greater than or equal to 0``).

Defaults reproduce the paper: 100 test instances and a 40-instance few-shot pool per unseen task, shots
0 / 5 / 10 / 20 / 40 over three seeds with LoRA r 16, alpha 32, dropout 0.05, constant lr 1e-3, 5 epochs, batch 32,
with and without the task definition; in-context learning with k = 3 exemplars, with and without the definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from taskscope.evaluate.examples import EvalSettings, eval_prompt_budget
from taskscope.pipeline.config import FolderName, Strict, section_slice
from taskscope.studies.common.config import (
    ModelEntry,
    ModelStudyConfig,
    ReportConfig,
    TaskSource,
    count_or_fraction,
    default_models,
    prompt_format_field,
)
from taskscope.tasks.formats import NAMED_FORMATS, PromptFormat
from taskscope.train.config import TrainConfig
from taskscope.train.data import prompt_token_budget

RENAMED = {"context": "prompt_format"}  # old keys of a transfer config and their new names

ContextKind = str  # a prompt kind or a named format (taskscope.tasks.formats.NAMED_FORMATS)
DEFAULT_K = 3  # exemplars wherever a context holds exemplars (the paper's 3)


def _check_format_name(name: str) -> str:
    if name not in NAMED_FORMATS:
        raise ValueError(f"unknown context / prompt format {name!r}; known: {sorted(NAMED_FORMATS)}")
    return name


class TransferTasks(TaskSource):
    """Which tasks are seen (instruction tuning) and unseen (transfer), and how each task is split.

    Seen / unseen, by the first given: ``split_dir`` (SNI ``splits/<name>/`` lists), ``unseen_clusters`` /
    ``unseen_tasks``, else the ``split`` metadata the SNI source sets (the ``mueller`` preset sets it from the
    categories).  Seen tasks: ``validation`` and ``test`` held out - counts, or fractions of the task's
    instances (default 10 % / 10 %, the paper's) -, the rest (at most ``cap``, or ``caps[task]``) is training data.  Unseen tasks: the first
    ``unseen_test`` instances (SNI order with ``sni_test_first``) and a disjoint ``fewshot_pool``.
    """

    split_dir: Path | None = None
    unseen_clusters: list[str] | None = None
    unseen_tasks: list[str] | None = None
    max_seen_tasks: int | None = Field(None, ge=1)
    max_unseen_tasks: int | None = Field(None, ge=1)
    cap: int | None = Field(None, ge=1)
    caps: dict[str, int] = Field(default_factory=dict)
    validation: int | float = 0.1  # seen tasks: a count, or a fraction in [0, 1) of the task's instances
    test: int | float = 0.1  # the paper's 10 % / 10 %
    unseen_test: int = Field(100, ge=1)
    fewshot_pool: int = Field(40, ge=0)
    sni_test_first: bool = True

    @field_validator("validation", "test")
    @classmethod
    def _count_or_fraction(cls, value: int | float, info: Any) -> int | float:
        count_or_fraction(value, info.field_name)
        if info.field_name == "test" and value == 0:
            raise ValueError("seen tasks need test instances (a count >= 1 or a fraction > 0)")
        return value

    @field_validator("caps")
    @classmethod
    def _positive_caps(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {task: cap for task, cap in value.items() if cap < 1}
        if bad:
            raise ValueError(f"per-task caps must be >= 1, got {bad}")
        return value


class TransferModel(ModelEntry):
    """A model compared in the study: the pre-trained base, or the base instruction-tuned on the seen tasks.

    ``train`` overrides fields of the study's ``instruction_tuning`` (e.g. ``sampler``, ``sampler_kwargs``,
    ``data_limit`` - each task's data cut to N examples -, ``cap`` - the sampler's rate cap only -,
    ``unsupervised_every``) for this model only.
    """

    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _train_needs_multitask(self) -> TransferModel:
        if self.kind == "pretrained" and self.train:
            raise ValueError("a 'pretrained' model is not trained; 'train' applies to kind 'multitask'")
        return self


def _default_instruction_tuning() -> TrainConfig:
    return TrainConfig(sampler="proportional", lora=None, lr=1e-4, epochs=2.0, batch_size=32, checkpoint_every=0)


FEWSHOT_SCHEDULE = "constant"  # the paper's constant 1e-3; TrainConfig's own default decays linearly


class FewshotGrid(Strict):
    """Few-shot LoRA fine-tuning on every unseen task: shot counts x seeds x task contexts."""

    shots: list[int] = Field(default_factory=lambda: [0, 5, 10, 20, 40], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    contexts: list[ContextKind] = Field(default_factory=lambda: ["definition", "none"], min_length=1)
    k: int = Field(DEFAULT_K, ge=0)  # exemplars in a context that holds them
    # the rest of TrainConfig's defaults are the paper's few-shot LoRA
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(schedule=FEWSHOT_SCHEDULE))

    @field_validator("train", mode="before")
    @classmethod
    def _paper_schedule(cls, value: Any) -> Any:
        """The schedule is constant unless the config names one."""
        return {"schedule": FEWSHOT_SCHEDULE, **value} if isinstance(value, dict) else value

    @field_validator("train")
    @classmethod
    def _lora(cls, value: TrainConfig) -> TrainConfig:
        if value.lora is None:
            raise ValueError("few-shot fine-tuning uses LoRA, train.lora cannot be null")
        return value

    @field_validator("contexts")
    @classmethod
    def _known_contexts(cls, value: list[str]) -> list[str]:
        return [_check_format_name(name) for name in value]

    @field_validator("shots")
    @classmethod
    def _shots_in_range(cls, value: list[int]) -> list[int]:
        bad = [n for n in value if not 0 <= n <= 40]
        if bad:
            raise ValueError(f"shot counts must lie in [0, 40], got {bad}")
        return sorted(set(value))


class ICLConfig(Strict):
    """In-context learning on every unseen task: ``k`` exemplars from the task's SNI positive examples (the
    paper's choice) or a seeded draw from its few-shot pool, laid out by ``format`` (a named format whose
    templates are used; ``with_definition`` picks its kind)."""

    k: int = Field(DEFAULT_K, ge=0)
    with_definition: list[bool] = Field(default_factory=lambda: [True, False], min_length=1)
    exemplars: Literal["fewshot_pool", "positive_examples"] = "positive_examples"
    format: str = "definition_exemplars"
    seed: int = 0

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        return _check_format_name(value)


class TrajectoryConfig(Strict):
    """Checkpoint trajectories: unseen ICL and few-shot loss at every checkpoint of ``model``, split at ``step``."""

    model: str
    step: int = Field(ge=1)
    shots: int = Field(20, ge=1, le=40)


class AnalysesConfig(Strict):
    """Which analyses run; a model list names the models an analysis compares (None: the analysis is off)."""

    transfer_curves: bool = True
    correlations: bool = True
    change: tuple[str, str] | None = None  # (before, after); default (first pretrained, first multitask)
    sampling: list[str] | None = None
    task_size_bins: int = Field(4, ge=1)
    data_limit: list[str] | None = None
    unsupervised: tuple[str, str] | None = None  # (without mixing, with mixing)
    trajectory: TrajectoryConfig | None = None


class TransferEvaluation(Strict):
    """Settings of every evaluation (`taskscope.evaluate.EvalSettings`) and of the seen-task loss."""

    settings: EvalSettings = Field(default_factory=EvalSettings)
    seen_train_instances: int = Field(20, ge=1)  # per seen task, for the train-loss side of the sampling study


class TransferConfig(ModelStudyConfig):
    """Everything a transfer study needs (see docs/transfer.md for each field)."""

    study: Literal["transfer"] = "transfer"
    name: FolderName = "transfer"  # the run folder is output_dir / name
    tasks: TransferTasks = Field(default_factory=TransferTasks)
    # the seen tasks' prompts: exemplars (where the kind has them) k = 3 unless the config says
    prompt_format: prompt_format_field(n_exemplars=DEFAULT_K) = Field(
        default_factory=lambda: PromptFormat(kind="definition", n_exemplars=DEFAULT_K))
    instruction_tuning: TrainConfig = Field(default_factory=_default_instruction_tuning)
    unsupervised_text: Path | None = None  # default: the inputs of the seen training instances
    models: list[TransferModel] = Field(default_factory=lambda: default_models(TransferModel), min_length=1)
    fewshot: FewshotGrid = Field(default_factory=FewshotGrid)
    icl: ICLConfig = Field(default_factory=ICLConfig)
    evaluation: TransferEvaluation = Field(default_factory=TransferEvaluation)
    analyses: AnalysesConfig = Field(default_factory=AnalysesConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _consistent(self) -> TransferConfig:
        names = self.model_names()
        for i, model in enumerate(self.models):
            try:
                train = self.train_config(model.name)
            except ValidationError as err:
                raise ValueError(f"models.{i}.train ({model.name}): {err.errors()[0]['loc']}: "
                                 f"{err.errors()[0]['msg']}") from None
            if train.unsupervised_every and self.unsupervised_text is not None \
                    and not Path(self.unsupervised_text).is_file():
                raise ValueError(f"unsupervised_text {str(self.unsupervised_text)!r} does not exist")
        multitask = self.multitask_models()
        analyses = self.analyses
        named = {"analyses.change": analyses.change, "analyses.sampling": analyses.sampling,
                 "analyses.data_limit": analyses.data_limit, "analyses.unsupervised": analyses.unsupervised}
        for where, listed in named.items():
            unknown = [n for n in (listed or ()) if n not in names]
            if unknown:
                raise ValueError(f"{where}: unknown model(s) {unknown}; models are {names}")
        for where in ("analyses.sampling", "analyses.data_limit", "analyses.unsupervised"):
            listed = named[where]
            if listed is not None and any(n not in multitask for n in listed):
                raise ValueError(f"{where}: compares instruction-tuned models; {list(listed)} includes a "
                                 f"'pretrained' one")
        if analyses.data_limit is not None:
            limits = [self.train_config(n).data_limit for n in analyses.data_limit]
            if None in limits or len(set(limits)) != len(limits):
                raise ValueError(f"analyses.data_limit: every model needs its own train.data_limit, got {limits}")
        if analyses.unsupervised is not None:
            mixing = [bool(self.train_config(n).unsupervised_every) for n in analyses.unsupervised]
            if mixing != [False, True]:
                raise ValueError("analyses.unsupervised: give (model without, model with) unsupervised_every")
        trajectory = analyses.trajectory
        if trajectory is not None:
            if trajectory.model not in multitask:
                raise ValueError(f"analyses.trajectory.model {trajectory.model!r} is not a multitask model "
                                 f"{multitask}")
            every = self.train_config(trajectory.model).checkpoint_every
            if not every or trajectory.step % every:
                raise ValueError(f"analyses.trajectory.step {trajectory.step} must be a multiple of the model's "
                                 f"checkpoint_every ({every})")
        return self

    def seen_prompt_budget(self) -> int:
        """Token budget of the seen tasks' prompts (instruction tuning and the seen-task loss): the smallest of
        every multitask model's training room (`taskscope.train.data.prompt_token_budget`) and the
        evaluation's (`taskscope.evaluate.examples.eval_prompt_budget`), so no later stage cuts a prompt."""
        budgets = [eval_prompt_budget(self.evaluation.settings)]
        for name in self.multitask_models():
            train = self.train_config(name)
            budgets.append(prompt_token_budget(train.max_length, train.max_target_length))
        return min(budgets)

    def train_config(self, name: str) -> TrainConfig:
        """The instruction-tuning config of model ``name``: the study's, updated by the model's ``train`` (a partial
        ``TrainConfig``: only the fields it overrides)."""
        return TrainConfig.model_validate({**section_slice(self.instruction_tuning), **self.model_named(name).train})

    def change_pair(self) -> tuple[str, str] | None:
        """(before, after) of the change correlation: ``analyses.change``, else (first pretrained, first
        multitask), else the first two models; None with a single model."""
        if self.analyses.change is not None:
            return self.analyses.change
        pretrained = [m.name for m in self.models if m.kind == "pretrained"]
        multitask = [m.name for m in self.models if m.kind == "multitask"]
        if pretrained and multitask:
            return pretrained[0], multitask[0]
        return (self.models[0].name, self.models[1].name) if len(self.models) > 1 else None
