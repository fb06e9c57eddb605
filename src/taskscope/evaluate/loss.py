"""Per-instance target loss: mean negative log-likelihood per target token, the prompt masked.

Order of operations of `target_loss(model, tokenizer, examples)`:

1. tokenise as training does (`taskscope.train.data.encode_tasks`): the prompt with special tokens, every
   reference without them and ``eos`` appended (so the loss includes predicting the end of the answer);
2. make one sequence per (example, reference) and fit it to ``max_length`` / ``max_target_length`` as
   training does (`fit_lengths`, prompt truncated from the left, target from the right);
3. with ``share_prefix`` (causal LMs): group sequences whose prompts share a token prefix of at least
   ``min_shared_tokens`` (`taskscope.represent.prefix`: the context of ICL prompts, a task's definition); per
   group, run the prefix once into a KV cache and each batch of the rest (prompt tail + target) on a copy of it;
4. sort the other sequences by length (longest first), cut them into batches of ``batch_size`` and right-pad
   them (`collate`);
5. run `taskscope.train.objective.TargetLoss` in eval mode without gradients: the backbone's final hidden
   states, the LM head applied **only at the positions whose next token is a target** (Gemma's 262k-entry
   head never sees a prompt position), Gemma's logit soft-capping, cross-entropy -> one loss per target token;
6. per sequence, the mean over its target tokens; per example, the references combined by ``reference``:
   ``"mean"`` (default; the expected training loss, since training draws one reference per example
   uniformly), ``"min"`` (the best-explained reference) or ``"first"``.

Returns one float per example, in input order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from transformers import DynamicCache

from taskscope.common.fastpaths import note_fast_path
from taskscope.models.capabilities import cache_keyword, cache_kwargs
from taskscope.represent.prefix import PrefixPlan, plan_shared_prefixes
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


Batch = tuple[list[int], torch.Tensor, torch.Tensor]  # item indices, per-token losses, their batch rows


def _batches(loss_module: TargetLoss, items: list[Item], plan: PrefixPlan, batch_size: int,
             collate_batch: Callable[[list[Item]], dict[str, torch.Tensor]], device: torch.device) -> Iterator[Batch]:
    """Run ``plan`` over ``items``: shared-prefix groups first (prefix once, then suffix batches on copies of its
    cache), then the rest in length-sorted batches; yield (item indices, per-token losses, their batch rows)."""
    hf = unwrap_peft(loss_module.model)
    for group in plan.groups:
        length = group.prefix_length
        prefix = torch.tensor([items[group.batches[0][0]].prompt_ids[:length]], dtype=torch.long, device=device)
        prefix_cache = DynamicCache()
        hf.base_model(input_ids=prefix, attention_mask=torch.ones_like(prefix), **cache_kwargs(hf.base_model, prefix_cache))
        for indices in group.batches:
            tails = [Item(0, items[i].prompt_ids[length:], items[i].target_ids) for i in indices]
            batch = {k: v.to(device) for k, v in collate_batch(tails).items()}
            cache = copy.deepcopy(prefix_cache)
            if len(indices) > 1:
                cache.batch_repeat_interleave(len(indices))
            mask = torch.cat([batch["attention_mask"].new_ones(len(indices), length), batch["attention_mask"]], dim=1)
            yield indices, *loss_module(batch["input_ids"], mask, batch["labels"], cache=cache)
    rest = sorted(plan.unshared, key=lambda i: -len(items[i]))
    for start in range(0, len(rest), batch_size):
        indices = rest[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate_batch([items[i] for i in indices]).items()}
        yield indices, *loss_module(**batch)


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
    share_prefix: bool = True,
    min_shared_tokens: int = 16,
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
    items = [item for _, item in sequences]
    reason = ("switched off (share_prefix=False)" if not share_prefix else
              "an encoder-decoder scores whole sequences" if is_encoder_decoder else
              f"{type(hf.base_model).__name__} does not continue a KV cache" if cache_keyword(hf.base_model) is None
              else "")
    note_fast_path("target_loss.share_prefix", used=not reason, reason=reason)
    if reason:
        plan = PrefixPlan(groups=[], unshared=list(range(len(items))))
    else:
        plan = plan_shared_prefixes([item.prompt_ids for item in items], batch_size, min_shared_tokens)
    pad_id = pad_token_id(tokenizer)
    decoder_start = getattr(hf.config, "decoder_start_token_id", None)

    def collate_batch(batch_items: list[Item]) -> dict[str, torch.Tensor]:
        batch = collate(batch_items, pad_id=pad_id, is_encoder_decoder=is_encoder_decoder,
                        decoder_start_id=decoder_start)
        batch.pop("task_index")
        return batch

    device = next(model.parameters()).device
    loss_module = TargetLoss(model)
    was_training = model.training
    model.eval()
    per_example: list[list[float]] = [[] for _ in examples]
    try:
        for indices, token_losses, rows in _batches(loss_module, items, plan, batch_size, collate_batch, device):
            sums = torch.zeros(len(indices), dtype=torch.float64).index_add_(0, rows.cpu(), token_losses.double().cpu())
            counts = torch.bincount(rows.cpu(), minlength=len(indices)).clamp(min=1)
            for i, value in zip(indices, (sums / counts).tolist()):
                per_example[sequences[i][0]].append(value)
    finally:
        model.train(was_training)
    return [_combine(losses, reference) for losses in per_example]
