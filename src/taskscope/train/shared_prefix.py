"""Shared-prefix training: a token prefix common to the prompts of a micro-batch runs once, with gradients.

In a causal LM the states of a prompt's first tokens do not depend on what follows, so when the rows of a
micro-batch begin with the same tokens (a task's definition and exemplars in the Tk-Instruct format; every
row of a control's batch comes from one task) those tokens can run once as a single row, their keys and
values repeated over the rows, and only each row's tail (rest of the prompt + target) runs per row.  The
loss and the gradients equal those of the unshared batch (up to float rounding): the prefix's keys and values
stay in the autograd graph, so the backward pass sums every row's gradient into the one prefix row.

`split_microbatch(items, ...)` works in this order:

1. plan the micro-batch with `taskscope.common.prefix.plan_shared_prefixes` (batch size = the micro-batch,
   so no group is cut): prompts sharing at least ``min_shared_tokens`` tokens form a group; a prefix always
   leaves at least one prompt token per row, whose state predicts the first target token;
2. each group becomes a `Unit` holding the prefix ids and its rows' tails (prompt after the prefix + target);
   the remaining rows become one `Unit` without a prefix;
3. `collate_unit` right-pads a unit's tails (`data.collate`) and, with a prefix, adds ``prefix_ids``
   ``(1, P)`` and widens ``attention_mask`` to ``[P ones | tail mask]``; `objective.TargetLoss` then runs the
   prefix into a ``DynamicCache``, ``batch_repeat_interleave``s it over the rows and continues it with the tails.

The units of a micro-batch are separate forward/backward passes; the loop divides every unit's loss by the
target tokens of the whole optimizer step, so the step's gradient is unchanged.  Dropout (LoRA's) on prefix
tokens draws one mask shared by the rows of a group instead of one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from taskscope.common.prefix import plan_shared_prefixes

from .data import Item, collate


@dataclass(frozen=True)
class Unit:
    """Rows that run in one forward pass: ``prefix_ids`` shared by all (empty: none) and each row's tail."""

    prefix_ids: tuple[int, ...]
    items: list[Item]


def split_microbatch(items: Sequence[Item], *, min_shared_tokens: int, enabled: bool) -> list[Unit]:
    """The forward passes of one micro-batch (module docstring, steps 1-2); disabled: the batch as it is."""
    if not enabled or len(items) < 2:
        return [Unit((), list(items))]
    plan = plan_shared_prefixes([item.prompt_ids for item in items], len(items), min_shared_tokens)
    units = []
    for group in plan.groups:
        length = group.prefix_length
        members = [items[i] for batch in group.batches for i in batch]
        tails = [Item(item.task_index, item.prompt_ids[length:], item.target_ids) for item in members]
        units.append(Unit(members[0].prompt_ids[:length], tails))
    if plan.unshared:
        units.append(Unit((), [items[i] for i in plan.unshared]))
    return units


def collate_unit(unit: Unit, *, pad_id: int, is_encoder_decoder: bool,
                 decoder_start_id: int | None) -> dict[str, torch.Tensor]:
    """Tensors of one unit (module docstring, step 3), ``task_index`` per row included."""
    batch = collate(unit.items, pad_id=pad_id, is_encoder_decoder=is_encoder_decoder, decoder_start_id=decoder_start_id)
    if unit.prefix_ids:
        prefix = torch.tensor([unit.prefix_ids], dtype=torch.long)
        mask = batch["attention_mask"]
        batch["attention_mask"] = torch.cat([mask.new_ones(mask.shape[0], prefix.shape[1]), mask], dim=1)
        batch["prefix_ids"] = prefix
    return batch
