"""Per-instance target loss: mean negative log-likelihood per target token, the prompt masked.

Order of operations of `target_loss(model, tokenizer, examples)`:

1. tokenise as training does (`taskscope.train.data.encode_tasks`): the prompt with special tokens, every
   reference without them and ``eos`` appended (so the loss includes predicting the end of the answer);
2. make one sequence per (example, reference) and fit it to ``max_length`` / ``max_target_length`` as
   training does (`fit_lengths`, prompt truncated from the left, target from the right);
3. sort the sequences by length (longest first), cut them into batches of ``batch_size`` and right-pad them
   (`collate`);
4. run `taskscope.train.objective.TargetLoss` in eval mode without gradients: the backbone's final hidden
   states, the LM head applied **only at the positions whose next token is a target** (Gemma's 262k-entry
   head never sees a prompt position), Gemma's logit soft-capping, cross-entropy -> one loss per target token;
5. per sequence, the mean over its target tokens; per example, the references combined by ``reference``:
   ``"mean"`` (default; the expected training loss, since training draws one reference per example
   uniformly), ``"min"`` (the best-explained reference) or ``"first"``.

Returns one float per example, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from taskscope.train.data import (
    ExampleLike,
    Item,
    collate,
    encode_tasks,
    fit_lengths,
    pad_token_id,
)
from taskscope.train.objective import TargetLoss, unwrap_peft

ReferencePolicy = Literal["mean", "min", "first"]
REFERENCE_POLICIES: tuple[str, ...] = ("mean", "min", "first")


def _combine(losses: list[float], reference: str) -> float:
    if reference == "mean":
        return sum(losses) / len(losses)
    if reference == "min":
        return min(losses)
    return losses[0]


def _sequences(tokenizer: Any, examples: Sequence[ExampleLike], *, is_encoder_decoder: bool, max_length: int,
               max_target_length: int, reference: str) -> list[tuple[int, Item]]:
    """(example index, Item) for every reference scored (only the first one under ``reference="first"``)."""
    by_task: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_task.setdefault(example.task, []).append(index)
    encoded = encode_tasks(tokenizer, {task: [examples[i] for i in indices] for task, indices in by_task.items()})
    sequences = []
    for task, indices in by_task.items():
        for index, example in zip(indices, encoded[task]):
            targets = example.target_ids[:1] if reference == "first" else example.target_ids
            for target_ids in targets:
                sequences.append((index, fit_lengths(
                    example, target_ids, task_index=0, max_length=max_length, max_target_length=max_target_length,
                    truncation="truncate", is_encoder_decoder=is_encoder_decoder)))
    return sequences


@torch.no_grad()
def target_loss(
    model: Any,
    tokenizer: Any,
    examples: Sequence[ExampleLike],
    *,
    batch_size: int = 16,
    reference: ReferencePolicy = "mean",
    max_length: int = 1024,
    max_target_length: int = 128,
) -> list[float]:
    """Mean target-token NLL of every example (see the module docstring), in input order."""
    if reference not in REFERENCE_POLICIES:
        raise ValueError(f"unknown reference policy {reference!r}; known: {', '.join(REFERENCE_POLICIES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not examples:
        return []
    hf = unwrap_peft(model)
    is_encoder_decoder = bool(getattr(hf.config, "is_encoder_decoder", False))
    sequences = _sequences(tokenizer, examples, is_encoder_decoder=is_encoder_decoder, max_length=max_length,
                           max_target_length=max_target_length, reference=reference)
    sequences.sort(key=lambda pair: -len(pair[1]))
    pad_id = pad_token_id(tokenizer)
    decoder_start = getattr(hf.config, "decoder_start_token_id", None)
    device = next(model.parameters()).device
    loss_module = TargetLoss(model)
    was_training = model.training
    model.eval()
    per_example: list[list[float]] = [[] for _ in examples]
    try:
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start:start + batch_size]
            batch = collate([item for _, item in chunk], pad_id=pad_id, is_encoder_decoder=is_encoder_decoder,
                            decoder_start_id=decoder_start)
            batch.pop("task_index")
            token_losses, rows = loss_module(**{k: v.to(device) for k, v in batch.items()})
            sums = torch.zeros(len(chunk), dtype=torch.float64).index_add_(0, rows.cpu(), token_losses.double().cpu())
            counts = torch.bincount(rows.cpu(), minlength=len(chunk)).clamp(min=1)
            for (index, _), value in zip(chunk, (sums / counts).tolist()):
                per_example[index].append(value)
    finally:
        model.train(was_training)
    return [_combine(losses, reference) for losses in per_example]
