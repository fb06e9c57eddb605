"""`MossaConfig`: everything a MOSSA study needs, validated (pydantic, ``extra="forbid"``), read from YAML.

Read and validated through the engine (:func:`taskscope.pipeline.config.load_config`, ``study: mossa`` or no
``study:`` key).  The training sections are typed ``taskscope.train.config.TrainConfig`` models and the prompt
format a ``taskscope.tasks.formats.PromptFormat``, so a typo fails at load time naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from taskscope.analysis.layer_map import LayerMapParams
from taskscope.pipeline.config import FolderName, Strict
from taskscope.studies.common.config import (
    ModelEntry,
    ModelStudyConfig,
    PromptFormatField,
    TaskSource,
    count_or_fraction,
    default_models,
)
from taskscope.tasks.formats import PromptFormat
from taskscope.train.config import TrainConfig

# old keys of a MOSSA config and their new names (an old key is a one-line error naming the new one)
RENAMED = {"experimental_models": "models", "multitask_training": "instruction_tuning",
           "report.baseline_model": "baseline_model", "extraction.dtype": "extraction.load_dtype"}


class TaskSelection(TaskSource):
    """Which tasks, and how each is split (``taskscope.tasks.splits.split_task``, disjoint shares): ``n_inputs``
    MOSSA inputs (the test share), ``validation`` (a count, or a fraction of the task's instances; default 10 %:
    what ``control_evaluation`` scores the controls on) and at most ``n_train`` training instances."""

    max_tasks_per_cluster: int | None = Field(None, ge=1)
    n_inputs: int = Field(48, ge=4)  # MOSSA inputs per task (the task's test split)
    validation: int | float = 0.1  # the validation share: a count, or a fraction in [0, 1)
    n_train: int | None = Field(64, ge=1)  # training instances per task (None: all the rest)

    @field_validator("validation")
    @classmethod
    def _validation_share(cls, value: int | float) -> int | float:
        return count_or_fraction(value, "validation")


class MossaModel(ModelEntry):
    """An experimental model: the pre-trained base, or the base instruction-tuned on the suite minus held-out tasks."""

    heldout_tasks: list[str] = Field(default_factory=list)
    heldout_clusters: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _heldout_needs_training(self) -> MossaModel:
        if self.kind == "pretrained" and (self.heldout_tasks or self.heldout_clusters):
            raise ValueError("a 'pretrained' model sees no tasks; heldout_tasks/heldout_clusters apply to 'multitask'")
        return self


class ExtractionConfig(Strict):
    """How hidden states are extracted.  ``load_dtype`` is the dtype every model is loaded in for extraction (it
    replaces ``model_options.dtype``, the training and scoring dtype, for this stage only); the states themselves are
    returned in float32 whatever it is."""

    batch_size: int = Field(16, ge=1)
    pooling: Literal["last", "mean"] = "last"
    load_dtype: Literal["float32", "bfloat16"] = "float32"
    share_prefix: bool = True  # run a token prefix shared by a task's prompts once (taskscope.represent.prefix)
    # prompts longer than this many tokens are cut (None: the model's context length, read from its config);
    # "left" keeps the end (the last token is what MOSSA reads), as training's fit_lengths does
    max_length: int | None = Field(None, ge=1)
    truncation_side: Literal["left", "right"] = "left"
    # the last layer after the stack's final norm (True: Hugging Face's last hidden_states entry) or before it
    final_norm: bool = True


class BootstrapConfig(Strict):
    """CKA intervals (``n_resamples > 0`` switches them on; it also sets the paired differences' resamples and
    permutations).  ``interval``: ``percentile`` (jackknife-centred, jackknife-scaled bootstrap percentile) or
    ``normal`` (jackknife bias-corrected normal: no resamples for the MOSSA and ceiling tables, the same simulated
    coverage, ~2x faster; docs/similarity.md)."""

    n_resamples: int = Field(0, ge=0)
    interval: Literal["percentile", "normal"] = "percentile"
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0


class MeasureSpec(Strict):
    """One extra similarity measure of the measure registry and its parameters (``measures.csv``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


def _measure_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class SimilarityConfig(Strict):
    """CKA per kernel (``mossa.csv``, with intervals), plus any other registered measures (``measures.csv``).

    ``measures`` entries are a registered name (``procrustes``) or ``{name, params}``; their parameters are
    checked against the measure's own parameter model before any work starts, and the report says whether
    the layer-wise conclusions agree with CKA's (``measure_agreement.csv``).
    """

    kernels: list[str] = Field(default_factory=lambda: ["linear"], min_length=1)
    debiased: bool = False
    kernel_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    measures: list[Annotated[MeasureSpec, BeforeValidator(_measure_entry)]] = Field(default_factory=list)


class ControlEvaluationConfig(Strict):
    """How every control is scored against the base model on its task's validation split (``controls.csv``).

    The validation split is the task's validation share (``tasks.validation``, default 10 %) of
    ``taskscope.tasks.splits.split_task``, disjoint from the training examples and the MOSSA inputs.  The target
    loss is always computed; ``generate`` adds greedy completions scored by ROUGE-L and exact match.  A control has
    ``learned`` its task when its mean validation loss is more than ``learned_margin`` (nats per target token)
    below the base model's.
    """

    max_examples: int | None = Field(None, ge=1)  # cap on validation examples per task
    generate: bool = True
    max_new_tokens: int = Field(16, ge=1)
    batch_size: int = Field(16, ge=1)
    learned_margin: float = Field(0.05, ge=0)
    n_bootstrap: int = Field(1000, ge=0)  # paired resamples of the validation examples for the loss gain's interval
    confidence: float = Field(0.95, gt=0, lt=1)


class MossaConfig(ModelStudyConfig):
    """Everything a MOSSA study needs (see docs/mossa.md and docs/pipeline.md for each field)."""

    study: Literal["mossa"] = "mossa"
    name: FolderName = "quickstart"
    tasks: TaskSelection = Field(default_factory=TaskSelection)
    prompt_format: PromptFormatField = Field(default_factory=lambda: PromptFormat(kind="definition"))
    models: list[MossaModel] = Field(default_factory=lambda: default_models(MossaModel), min_length=1)
    baseline_model: str = "pretrained"  # differences.csv and the findings compare every model with this one
    control_training: TrainConfig = Field(default_factory=TrainConfig)
    control_seeds: int = Field(1, ge=1)  # replicate controls per task (training seed + s): the noise ceiling
    control_evaluation: ControlEvaluationConfig = Field(default_factory=ControlEvaluationConfig)
    instruction_tuning: TrainConfig = Field(default_factory=TrainConfig)
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    layer_map: LayerMapParams = Field(default_factory=LayerMapParams)

    def named_models(self) -> dict[str, str | None]:
        changepoint = self.layer_map.rule == "changepoint"
        return {"layer_map.reference_model": self.layer_map.reference_model, "baseline_model": self.baseline_model,
                "layer_map.baseline_model": self.layer_map.baseline_model if changepoint else None}
