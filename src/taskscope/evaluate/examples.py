"""Evaluate a model on formatted examples: greedy completions scored by ROUGE-L / exact match, and target loss.

`evaluate_examples(loaded, examples, settings)`, in order:

1. the cache key: the model fingerprint, the sha256 of the examples (`hash_examples`) and the settings;
   with an `EvalCache` a stored result is returned without touching the model;
2. greedy completions (`generate`) when ``settings.generate`` is set;
3. per-instance target loss (`target_loss`) when ``settings.loss`` is set;
4. one row per example: ``task``, ``instance_id``, ``references`` (tuple), and ``prediction``,
   ``rouge_l``, ``exact_match`` (generation) and ``loss`` (loss); the result is stored in the cache.

Used for seen tasks' validation/test splits, in-context learning (`icl`) and few-shot transfer (`fewshot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from taskscope.train.data import ExampleLike

from .cache import EvalCache, hash_examples
from .generate import generate
from .loss import ReferencePolicy, target_loss
from .rouge import exact_match, rouge_l

COLUMNS = ("task", "instance_id", "references", "prediction", "rouge_l", "exact_match", "loss")


class EvalSettings(BaseModel):
    """What to compute and how: generation length, batch size, reference policy of the loss, truncation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generate: bool = True
    loss: bool = True
    max_new_tokens: int = Field(default=32, ge=1)
    batch_size: int = Field(default=16, ge=1)
    reference: ReferencePolicy = "mean"
    max_length: int = Field(default=1024, ge=2)
    max_target_length: int = Field(default=128, ge=1)
    share_prefix: bool = True  # the loss runs a prompt prefix shared by several examples once (same values)


def eval_prompt_budget(settings: EvalSettings) -> int:
    """Prompt tokens that leave room for the longer of the target and the generation in ``max_length``."""
    return max(1, settings.max_length - max(settings.max_target_length, settings.max_new_tokens))


def token_counter(tokenizer: Any):
    """Counts a text's tokens as the model sees them (special tokens included)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True)["input_ids"])

    return count


def prompt_budget(loaded: Any, settings: EvalSettings) -> tuple[int, Any]:
    """``(max prompt tokens, token counter)`` under which no evaluation truncates a prompt: ``max_length``
    minus room for the longer of the target and the generation, counted with the model's tokenizer
    (special tokens included).  Formats built to this budget lose exemplars first, never silently the
    definition or the input (`taskscope.tasks.formats`)."""
    budget = eval_prompt_budget(settings)
    return budget, token_counter(loaded.tokenizer)


def _compute(loaded: Any, examples: Sequence[ExampleLike], settings: EvalSettings) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        "task": [ex.task for ex in examples],
        "instance_id": [ex.instance_id for ex in examples],
        "references": [list(ex.targets) for ex in examples],
    }
    if settings.generate:
        predictions = generate(loaded.model, loaded.tokenizer, [ex.prompt for ex in examples],
                               max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                               max_prompt_tokens=settings.max_length - settings.max_new_tokens)
        columns["prediction"] = predictions
        columns["rouge_l"] = [rouge_l(p, ex.targets) for p, ex in zip(predictions, examples)]
        columns["exact_match"] = [exact_match(p, ex.targets) for p, ex in zip(predictions, examples)]
    if settings.loss:
        columns["loss"] = target_loss(loaded.model, loaded.tokenizer, examples, batch_size=settings.batch_size,
                                      reference=settings.reference, max_length=settings.max_length,
                                      max_target_length=settings.max_target_length,
                                      share_prefix=settings.share_prefix)
    return columns


def evaluate_examples(
    loaded: Any,
    examples: Sequence[ExampleLike],
    settings: EvalSettings | None = None,
    *,
    cache: EvalCache | None = None,
) -> pd.DataFrame:
    """Per-instance scores of ``loaded`` (a `LoadedModel`) on ``examples``; see the module docstring."""
    settings = settings or EvalSettings()
    if not settings.generate and not settings.loss:
        raise ValueError("EvalSettings: nothing to compute (generate and loss are both off)")
    if not examples:
        raise ValueError("no examples to evaluate")
    if cache is None:
        columns = _compute(loaded, examples, settings)
    else:
        key = {"kind": "examples", "fingerprint": loaded.fingerprint, "examples": hash_examples(examples),
               "settings": settings.model_dump(mode="json")}
        columns = cache.get_or_compute(key, lambda: _compute(loaded, examples, settings))
    frame = pd.DataFrame({name: columns[name] for name in COLUMNS if name in columns})
    frame["references"] = [tuple(refs) for refs in frame["references"]]
    return frame
