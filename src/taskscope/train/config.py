"""`TrainConfig`: every knob of the training loop as an explicit, validated field.

The defaults reproduce the few-shot fine-tuning of Mueller, Dredze and Andrews (LoRA r 16, alpha 32,
dropout 0.05, learning rate 1e-3, 5 epochs, batch 32, AdamW, linear decay).  Set ``lora=None`` for full
fine-tuning.  ``batch_size`` is the micro-batch of one process; an optimizer step sees
``batch_size * grad_accum * num_processes`` examples (the Hugging Face convention).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class LoraSettings(BaseModel):
    """LoRA adapter settings passed to `taskscope.models.lora.add_lora`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: str | tuple[str, ...] = "all-linear"


class TrainConfig(BaseModel):
    """Training hyper-parameters; unknown fields are rejected.

    Steps: ``max_steps`` when set, else ``epochs`` passes over the (capped) data.  With a ``sampler`` an
    "epoch" is ``ceil(sum_k min(N_k, cap) / examples per step)`` steps of draws from ``P_s(K)``; without one,
    every example of every task is seen once per epoch in a seeded, length-grouped order.
    ``unsupervised_every = k`` makes every k-th optimizer step an unsupervised step on the text source
    (0 = off); those steps are added on top of the supervised ones.
    ``validation_share`` holds out that share of each task's examples (``ceil``) as validation data;
    ``stop_target_loss`` / ``stop_patience`` stop at an evaluation (every ``eval_every`` steps) whose mean
    validation loss is at most the target / after that many evaluations without improvement.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lr: float = Field(default=1e-3, gt=0.0)
    epochs: float = Field(default=5.0, gt=0.0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    warmup_ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    warmup_steps: int | None = Field(default=None, ge=0)  # fixed warm-up steps; overrides warmup_ratio
    data_limit: int | None = Field(default=None, ge=1)  # per-task examples kept (seeded draw); see train/plan.py
    schedule: Literal["linear", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float | None = Field(default=1.0, gt=0.0)
    max_length: int = Field(default=1024, ge=2)
    max_target_length: int = Field(default=128, ge=1)
    truncation: Literal["truncate", "fail"] = "truncate"
    lora: LoraSettings | None = LoraSettings()
    sampler: str | None = None
    sampler_kwargs: dict[str, Any] = Field(default_factory=dict)
    cap: int | None = Field(default=None, ge=1)
    group_by_length: bool = True
    checkpoint_every: int = Field(default=0, ge=0)
    unsupervised_every: int = Field(default=0, ge=0)
    eval_every: int = Field(default=0, ge=0)
    log_every: int = Field(default=10, ge=1)
    # experiment trackers through accelerate (train/logging.py); None: tensorboard when installed
    log_with: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] | None = None
    seed: int = 0
    # speed: shared-prefix training (train/shared_prefix.py) and bfloat16 autocast (train/precision.py)
    share_prefix: bool = True
    min_shared_tokens: int = Field(default=16, ge=1)
    autocast_dtype: Literal["bfloat16"] | None = None
    # stop when learned (train/stopping.py): validation every eval_every steps, a criterion, the step cap
    validation_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    stop_target_loss: float | None = Field(default=None, ge=0.0)
    stop_patience: int | None = Field(default=None, ge=1)
    stop_min_delta: float = Field(default=0.0, ge=0.0)

    @field_validator("log_with")
    @classmethod
    def _trackers_installed(cls, value: list[str] | None) -> list[str] | None:
        from taskscope.train.logging import missing_trackers

        missing = missing_trackers(value or [])
        if missing:
            raise ValueError(f"tracker {missing[0]!r} is not installed (pip install {missing[0]}); "
                             "log_with: [] logs to log.jsonl only")
        return value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.unsupervised_every == 1:
            raise ValueError("unsupervised_every must be 0 (off) or >= 2 (every k-th step is unsupervised)")
        if self.max_target_length >= self.max_length:
            raise ValueError(
                f"max_target_length ({self.max_target_length}) must be smaller than max_length ({self.max_length})"
            )
        if (self.stop_target_loss is not None or self.stop_patience is not None) and not self.eval_every:
            raise ValueError("stop_target_loss / stop_patience need eval_every >= 1 (validation steps to stop at)")
        return self
