"""Training data: tokenisation with prompt masking, truncation, reference choice, length-grouped batches.

Order of operations:

1. `encode_tasks` tokenises every example once: the prompt (with the tokenizer's special tokens, e.g. BOS)
   and every reference target (without special tokens, then ``eos`` appended).  A task with no examples
   raises `TrainDataError` naming it.
2. `choose_reference` picks one reference per example per epoch, seeded by
   ``hash(seed, task, instance id, epoch)``.
3. `fit_lengths` applies ``max_length``: targets longer than ``max_target_length`` and prompts that do not
   fit are truncated (target from the right, prompt from the **left**, keeping its end - the query - and the
   whole target) or, with ``truncation="fail"``, raise `TrainDataError` naming task and instance.
   Causal LMs see ``prompt + target`` in ``max_length`` tokens; T5 sees the prompt (``max_length``) in the
   encoder and the target (``max_target_length``) in the decoder.  Cutting a prompt's left end would drop its
   definition first, so prompts should be built to `prompt_token_budget` by `taskscope.tasks.formats`
   (which drops exemplars first and records what it cut); `warn_truncation` reports, with counts, any
   prompt or target `fit_lengths` still has to cut, so nothing is cut silently.
4. `epoch_batches` orders one epoch: a seeded permutation, cut into mega-batches of 50 micro-batches, each
   sorted by length and cut into micro-batches, then the micro-batches shuffled (so padding is small and the
   order still random); `group_by_length=False` keeps the permutation.  The items of one sampler step are
   grouped by `group_by_length`: same-task micro-batches first, then by length.
5. `collate` right-pads a micro-batch into tensors; label ``-100`` marks every position that is not a target.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from taskscope.tasks.splits import seed_from

IGNORE_INDEX = -100
MEGABATCH_FACTOR = 50


class TrainDataError(ValueError):
    """Training data that cannot be used as given (empty task, over-long input with truncation="fail")."""


class ExampleLike(Protocol):
    """What training needs of an example (`taskscope.tasks.formats.FormattedExample` satisfies it)."""

    task: str
    instance_id: str
    prompt: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class EncodedExample:
    """One example as token ids: the prompt and every reference target (each ending in eos)."""

    task: str
    instance_id: str
    prompt_ids: tuple[int, ...]
    target_ids: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Item:
    """One training sequence after reference choice and truncation."""

    task_index: int
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def pad_token_id(tokenizer: Any) -> int:
    """The id used for padding: the pad token, else eos (padding is masked out, so its value is irrelevant)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise TrainDataError(
        f"tokenizer {type(tokenizer).__name__} has neither a pad token nor an eos token; "
        "set tokenizer.pad_token before training"
    )


def encode_tasks(tokenizer: Any, data: Mapping[str, Sequence[ExampleLike]]) -> dict[str, list[EncodedExample]]:
    """Tokenise every example of every task (order kept); raise naming any task left without examples."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainDataError(f"tokenizer {type(tokenizer).__name__} has no eos token; targets need one to end")
    encoded: dict[str, list[EncodedExample]] = {}
    for task, examples in data.items():
        if len(examples) == 0:
            raise TrainDataError(f"task {task!r} has no training examples (left empty by caps or splits?)")
        prompts = tokenizer([ex.prompt for ex in examples], add_special_tokens=True)["input_ids"]
        rows = []
        for example, prompt_ids in zip(examples, prompts):
            if not example.targets:
                raise TrainDataError(f"task {task!r}, instance {example.instance_id!r}: no target to train on")
            targets = tokenizer(list(example.targets), add_special_tokens=False)["input_ids"]
            rows.append(EncodedExample(
                task=task, instance_id=example.instance_id, prompt_ids=tuple(prompt_ids),
                target_ids=tuple(tuple(t) + (eos,) for t in targets),
            ))
        encoded[task] = rows
    return encoded


def choose_reference(seed: int, example: EncodedExample, epoch: int) -> tuple[int, ...]:
    """The reference target trained on in ``epoch``: a draw seeded by (seed, task, instance id, epoch)."""
    if len(example.target_ids) == 1:
        return example.target_ids[0]
    return example.target_ids[seed_from(seed, example.task, example.instance_id, epoch) % len(example.target_ids)]


def fit_lengths(
    example: EncodedExample,
    target_ids: tuple[int, ...],
    *,
    task_index: int,
    max_length: int,
    max_target_length: int,
    truncation: str,
    is_encoder_decoder: bool,
) -> Item:
    """Truncate (or refuse) one sequence so it fits; see the module docstring, step 3."""
    where = f"task {example.task!r}, instance {example.instance_id!r}"
    if len(target_ids) > max_target_length:
        if truncation == "fail":
            raise TrainDataError(f"{where}: target has {len(target_ids)} tokens > max_target_length {max_target_length}")
        target_ids = target_ids[:max_target_length]
    prompt_budget = max_length if is_encoder_decoder else max_length - len(target_ids)
    prompt_ids = example.prompt_ids
    if len(prompt_ids) > prompt_budget:
        if truncation == "fail":
            raise TrainDataError(
                f"{where}: prompt has {len(prompt_ids)} tokens, only {prompt_budget} fit in max_length {max_length}"
                + ("" if is_encoder_decoder else f" with its {len(target_ids)}-token target")
            )
        prompt_ids = prompt_ids[len(prompt_ids) - prompt_budget:]
    return Item(task_index=task_index, prompt_ids=prompt_ids, target_ids=target_ids)


def prompt_token_budget(max_length: int, max_target_length: int) -> int:
    """Prompt tokens that `fit_lengths` never cuts, for any model kind: ``max_length - max_target_length``."""
    return max(1, max_length - max_target_length)


def truncation_counts(data: Mapping[str, Sequence[EncodedExample]], *, max_length: int, max_target_length: int,
                      is_encoder_decoder: bool) -> dict[str, dict[str, int]]:
    """Per task, how many prompts and reference targets `fit_lengths` would cut (tasks with none left out).
    A prompt counts when it does not fit beside its longest (truncated) reference."""
    counts: dict[str, dict[str, int]] = {}
    for task, examples in data.items():
        prompts = targets = 0
        for example in examples:
            longest = min(max(map(len, example.target_ids)), max_target_length)
            budget = max_length if is_encoder_decoder else max_length - longest
            prompts += len(example.prompt_ids) > budget
            targets += sum(len(t) > max_target_length for t in example.target_ids)
        if prompts or targets:
            counts[task] = {"prompts": prompts, "targets": targets, "examples": len(examples)}
    return counts


def warn_truncation(data: Mapping[str, Sequence[EncodedExample]], *, max_length: int, max_target_length: int,
                    is_encoder_decoder: bool, where: str = "training") -> dict[str, dict[str, int]]:
    """One `PromptTruncationWarning` with the counts of `truncation_counts` when `fit_lengths` will cut
    anything (prompts lose their left end: the definition first); returns the counts."""
    from taskscope.tasks.formats import PromptTruncationWarning

    counts = truncation_counts(data, max_length=max_length, max_target_length=max_target_length,
                               is_encoder_decoder=is_encoder_decoder)
    if counts:
        n_prompts = sum(c["prompts"] for c in counts.values())
        n_targets = sum(c["targets"] for c in counts.values())
        total = sum(len(examples) for examples in data.values())
        tasks = sorted(counts)
        warnings.warn(
            f"{where}: {n_prompts} of {total} prompts cut from the left (definition first) and {n_targets} "
            f"reference targets cut from the right to max_length={max_length} / max_target_length="
            f"{max_target_length} (tasks {tasks[:5]}{' ...' if len(tasks) > 5 else ''}); build prompts to "
            f"prompt_token_budget={prompt_token_budget(max_length, max_target_length)} tokens so exemplars go first",
            PromptTruncationWarning, stacklevel=3)
    return counts


def epoch_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator, group_by_length: bool) -> list[list[int]]:
    """Indices of one epoch cut into micro-batches (step 4 of the module docstring); the last may be short."""
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    megabatch = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), megabatch):
        chunk = sorted(order[start:start + megabatch].tolist(), key=lambda i: -lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def group_by_length(items: Sequence[Item], batch_size: int) -> list[list[Item]]:
    """Cut the items of one optimizer step into micro-batches, same-task batches first, then by length.

    Per task (in order of first appearance) the items are sorted by length (longest first) and cut into full
    micro-batches of ``batch_size``; each task's remainder (fewer than ``batch_size`` items) is pooled, sorted
    by length and cut.  There are as many micro-batches as plain length sorting gives (``ceil(n / batch_size)``)
    and the step's loss is the same, but most micro-batches hold one task, so a task context shared by their
    prompts runs once (`shared_prefix`).
    """
    by_task: dict[int, list[Item]] = {}
    for item in items:
        by_task.setdefault(item.task_index, []).append(item)
    batches: list[list[Item]] = []
    remainder: list[Item] = []
    for task_items in by_task.values():
        ordered = sorted(task_items, key=len, reverse=True)
        full = len(ordered) - len(ordered) % batch_size
        batches.extend(ordered[i:i + batch_size] for i in range(0, full, batch_size))
        remainder.extend(ordered[full:])
    remainder.sort(key=len, reverse=True)
    batches.extend(remainder[i:i + batch_size] for i in range(0, len(remainder), batch_size))
    return batches


def hold_out(data: Mapping[str, Sequence[ExampleLike]], share: float, seed: int
             ) -> tuple[dict[str, list[ExampleLike]], dict[str, list[ExampleLike]]]:
    """Split each task into (train, validation): ``ceil(share * n)`` examples held out per task.

    The held-out examples are those with the smallest ``seed_from(seed, "validation", task, instance id)``
    (so the split does not depend on the order of the examples); the training examples keep their order.  A
    task left without a training example raises `TrainDataError` naming it.
    """
    train_part: dict[str, list[ExampleLike]] = {}
    validation: dict[str, list[ExampleLike]] = {}
    for task, examples in data.items():
        n_held = math.ceil(share * len(examples))
        if len(examples) - n_held < 1:
            raise TrainDataError(f"task {task!r}: validation_share {share} of {len(examples)} example(s) leaves "
                                 "none to train on")
        ranked = sorted(range(len(examples)), key=lambda i: seed_from(seed, "validation", task, examples[i].instance_id))
        held = set(ranked[:n_held])
        train_part[task] = [ex for i, ex in enumerate(examples) if i not in held]
        validation[task] = [examples[i] for i in sorted(held)]
    return train_part, validation


def collate(items: Sequence[Item], *, pad_id: int, is_encoder_decoder: bool, decoder_start_id: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad ``items`` into tensors.

    Causal LM: ``input_ids``/``attention_mask`` of ``prompt + target`` and ``labels`` equal to the input at
    target positions, ``-100`` elsewhere (the loss shifts them).  T5: encoder ``input_ids``/``attention_mask``
    from the prompt, ``decoder_input_ids`` (target shifted right after ``decoder_start_id``),
    ``decoder_attention_mask`` and ``labels`` (the target, ``-100`` on padding).  ``task_index`` per row.
    """
    task_index = torch.tensor([item.task_index for item in items], dtype=torch.long)
    if not is_encoder_decoder:
        width = max(len(item) for item in items)
        input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            sequence = item.prompt_ids + item.target_ids
            input_ids[row, :len(sequence)] = torch.tensor(sequence)
            attention_mask[row, :len(sequence)] = 1
            labels[row, len(item.prompt_ids):len(sequence)] = torch.tensor(item.target_ids)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "task_index": task_index}
    if decoder_start_id is None:
        raise TrainDataError("an encoder-decoder model needs config.decoder_start_token_id")
    enc_width = max(len(item.prompt_ids) for item in items)
    dec_width = max(len(item.target_ids) for item in items)
    input_ids = torch.full((len(items), enc_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), enc_width), dtype=torch.long)
    decoder_input_ids = torch.full((len(items), dec_width), pad_id, dtype=torch.long)
    decoder_attention_mask = torch.zeros((len(items), dec_width), dtype=torch.long)
    labels = torch.full((len(items), dec_width), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(items):
        n_prompt, n_target = len(item.prompt_ids), len(item.target_ids)
        input_ids[row, :n_prompt] = torch.tensor(item.prompt_ids)
        attention_mask[row, :n_prompt] = 1
        decoder_input_ids[row, :n_target] = torch.tensor((decoder_start_id,) + item.target_ids[:-1])
        decoder_attention_mask[row, :n_target] = 1
        labels[row, :n_target] = torch.tensor(item.target_ids)
    return {
        "input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask, "labels": labels, "task_index": task_index,
    }
