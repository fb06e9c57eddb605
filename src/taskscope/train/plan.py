"""Data order: which examples each optimizer step trains on, as a resumable cursor.

Every process computes the same global plan; `rank_share` then gives process ``r`` of ``W`` the micro-batches
``r, r + W, ...`` of the step (cycling when a short final step has fewer micro-batches than processes).

* `EpochPlan` (no sampler): epochs over all examples of all tasks (each task's first ``cap`` examples when
  ``cap`` is set).  Epoch ``e`` is `data.epoch_batches` with a generator seeded by ``hash(seed, "epoch", e)``;
  a step is the next ``grad_accum * W`` micro-batches.  Cursor: ``(epoch, step in epoch)``.
* `SamplerPlan`: each step draws ``batch_size * grad_accum * W`` task indices from the sampler's
  ``P_s(K)`` and takes the next example of each drawn task from that task's own stream (a permutation seeded
  by ``hash(seed, task, pass)``, renewed when used up); the drawn items are grouped by length into
  micro-batches.  Cursor: per task ``(pass, position)``; the sampler's RNG is saved with it.

References: an example seen in epoch (pass) ``e`` trains on `data.choose_reference` for ``e``.

Step counts (`total_steps`): the *instruction-tuning* (supervised) steps are ``max_steps``, else
``ceil(epochs * steps per epoch)``; with ``unsupervised_every = k`` every k-th optimizer step is unsupervised
and ``S // (k - 1)`` of them are *added*, so the supervised step count is the same with and without mixing
(the paper's setup).  Warm-up (`warmup_count`): ``warmup_steps`` when set, else ``ceil(warmup_ratio * total)``.

Two per-task limits, kept apart:

* ``data_limit`` (`limit_data`): each task keeps at most N of its examples - a seeded draw in the order of
  ``hash(seed, "data_limit", task, instance id)``, so a smaller limit's examples are among a larger one's -
  *before* anything else: the sampler sees the limited sizes and the task's stream cycles over those N
  examples (Mueller et al.'s "limits 10 ... 5000": a task contributes at most N distinct examples).
* ``cap``: the sampler's rate cap ``n_k = min(N_k, cap)`` (examples-proportional mixing, Raffel et al.): it
  shapes ``P_s(K)`` but the task's stream still runs over all its examples; without a sampler
  (`EpochPlan`) it keeps each task's first ``cap`` examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from taskscope.tasks.splits import seed_from

from .data import (
    EncodedExample,
    Item,
    choose_reference,
    epoch_batches,
    fit_lengths,
    group_by_length,
)


def total_steps(config: Any, steps_per_epoch: int) -> int:
    """All optimizer steps: the supervised ones (``max_steps`` or epochs) plus the unsupervised ones mixed in."""
    supervised = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    k = config.unsupervised_every
    return supervised + (supervised // (k - 1) if k else 0)


def warmup_count(config: Any, total: int) -> int:
    """Warm-up steps of the schedule: ``warmup_steps`` when set, else ``ceil(warmup_ratio * total)``."""
    steps = getattr(config, "warmup_steps", None)
    return min(int(steps), total) if steps is not None else math.ceil(config.warmup_ratio * total)


def limit_data(data: dict[str, list[Any]], limit: int | None, seed: int) -> dict[str, list[Any]]:
    """Each task's examples cut to at most ``limit`` by the seeded draw of the module docstring (order kept)."""
    if limit is None:
        return data
    out = {}
    for task, examples in data.items():
        ranked = sorted(range(len(examples)), key=lambda i: seed_from(seed, "data_limit", task, examples[i].instance_id))
        keep = set(ranked[:limit])
        out[task] = [ex for i, ex in enumerate(examples) if i in keep]
    return out


class ItemMaker:
    """Turns (example, epoch) into a truncated `Item` under the length settings of the run."""

    def __init__(self, *, seed: int, max_length: int, max_target_length: int, truncation: str, is_encoder_decoder: bool) -> None:
        self.seed = seed
        self.lengths = {"max_length": max_length, "max_target_length": max_target_length,
                        "truncation": truncation, "is_encoder_decoder": is_encoder_decoder}

    def check_all(self, data: dict[str, list[EncodedExample]]) -> None:
        """Fit every reference of every example now, so ``truncation="fail"`` fails before training starts."""
        for task_index, examples in enumerate(data.values()):
            for example in examples:
                for target_ids in example.target_ids:
                    fit_lengths(example, target_ids, task_index=task_index, **self.lengths)

    def __call__(self, example: EncodedExample, task_index: int, epoch: int) -> Item:
        return fit_lengths(example, choose_reference(self.seed, example, epoch), task_index=task_index, **self.lengths)


def rank_share(microbatches: Sequence[list[Item]], rank: int, world: int) -> list[list[Item]]:
    """The micro-batches of process ``rank``: every ``world``-th, cycling if there are fewer than ``world``."""
    if len(microbatches) >= world:
        return list(microbatches[rank::world])
    return [microbatches[rank % len(microbatches)]]


class EpochPlan:
    """Seeded epochs over the pooled examples of all tasks (see the module docstring)."""

    def __init__(self, data: dict[str, list[EncodedExample]], make_item: ItemMaker, *, batch_size: int,
                 grad_accum: int, world: int, cap: int | None, seed: int, group_by_length: bool) -> None:
        self.pool = [(k, ex) for k, examples in enumerate(data.values()) for ex in examples[:cap]]
        self.make_item = make_item
        self.batch_size = batch_size
        self.per_step = grad_accum * world
        self.seed = seed
        self.group = group_by_length
        self.lengths = [len(ex.prompt_ids) + len(ex.target_ids[0]) for _, ex in self.pool]
        self.epoch, self.position = 0, 0
        self._batches = self._epoch(0)

    def _epoch(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng(seed_from(self.seed, "epoch", epoch))
        return epoch_batches(self.lengths, self.batch_size, rng, self.group)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self._batches) / self.per_step)

    def next_step(self, step: int) -> list[list[Item]]:
        """All micro-batches of the next step (every process), advancing the cursor."""
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
            self._batches = self._epoch(self.epoch)
        chosen = self._batches[self.position * self.per_step:(self.position + 1) * self.per_step]
        self.position += 1
        return [[self.make_item(self.pool[i][1], self.pool[i][0], self.epoch) for i in batch] for batch in chosen]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._batches = self._epoch(self.epoch)


class SamplerPlan:
    """Per-step task draws from a `TaskSampler`, examples from per-task seeded streams."""

    def __init__(self, data: dict[str, list[EncodedExample]], make_item: ItemMaker, sampler: Any, *,
                 batch_size: int, grad_accum: int, world: int, seed: int) -> None:
        self.tasks = list(data)
        self.data = data
        self.make_item = make_item
        self.sampler = sampler
        self.batch_size = batch_size
        self.per_step_examples = batch_size * grad_accum * world
        self.seed = seed
        self.cursor = {task: [0, 0] for task in self.tasks}
        self._orders: dict[str, tuple[int, np.ndarray]] = {}

    def _order(self, task: str, epoch: int) -> np.ndarray:
        cached = self._orders.get(task)
        if cached is None or cached[0] != epoch:
            cached = (epoch, np.random.default_rng(seed_from(self.seed, task, epoch)).permutation(len(self.data[task])))
            self._orders[task] = cached
        return cached[1]

    def next_step(self, step: int) -> list[list[Item]]:
        items = []
        for _ in range(self.per_step_examples):
            k = self.sampler.sample(step)
            task = self.tasks[k]
            epoch, position = self.cursor[task]
            if position >= len(self.data[task]):
                epoch, position = epoch + 1, 0
            items.append(self.make_item(self.data[task][int(self._order(task, epoch)[position])], k, epoch))
            self.cursor[task] = [epoch, position + 1]
        return group_by_length(items, self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": {task: list(c) for task, c in self.cursor.items()}, "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = {task: list(c) for task, c in state["cursor"].items()}
        self.sampler.load_state_dict(state["sampler"])
