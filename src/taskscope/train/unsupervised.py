"""Unsupervised steps mixed into supervised training: plain LM loss or T5 span corruption.

A text source is a list of strings or a text file (one document per non-empty line).  Unsupervised step
``u`` (the u-th one of the run) takes the next ``batch_size * grad_accum * W`` documents of a seeded
shuffle of the source (a new shuffle per pass, seeded by ``hash(seed, "unsupervised", pass)``), so the
position needs no saved state: it follows from ``u``.

* decoder-only: every token after the first is a target (`Item` with a one-token "prompt").
* encoder-decoder: T5 span corruption (Raffel et al. 2020): noise density 0.15, mean span length 3; the
  noise is cut into ``n`` spans at seeded random points, each span replaced in the input by a sentinel and the
  target is ``sentinel_0 span_0 sentinel_1 span_1 ... eos``.  Sentinels are the tokenizer's
  ``<extra_id_i>`` tokens; a tokenizer without them (e.g. a tiny test tokenizer) falls back to the top ids of
  the model's vocabulary, ``vocab_size - 1 - i`` - where T5's own sentinels live - which for such a
  tokenizer may coincide with ordinary tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskscope.tasks.splits import seed_from

from .data import Item, TrainDataError

NOISE_DENSITY = 0.15
MEAN_SPAN_LENGTH = 3.0


def read_text_source(source: str | Path | Sequence[str]) -> list[str]:
    """The documents of ``source`` (a path to a text file, or the strings themselves); raise if none."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise TrainDataError(f"unsupervised text source {str(path)!r} does not exist")
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        where = f"file {str(path)!r}"
    else:
        texts = [text for text in source if text.strip()]
        where = "list"
    if not texts:
        raise TrainDataError(f"unsupervised text source ({where}) holds no text")
    return texts


def sentinel_ids(tokenizer: Any, vocab_size: int, count: int) -> list[int]:
    """Ids of ``<extra_id_0..count-1>``, or the fallback ``vocab_size - 1 - i`` (module docstring)."""
    vocab = tokenizer.get_vocab()
    return [vocab.get(f"<extra_id_{i}>", vocab_size - 1 - i) for i in range(count)]


def _partition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive integers summing to ``total`` (seeded random cut points)."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else np.array([], int)
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(int)


def span_corrupt(ids: Sequence[int], rng: np.random.Generator, *, sentinels_of: Any, eos: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(encoder input, decoder target) of T5 span corruption of ``ids`` (no eos in ``ids``)."""
    length = len(ids)
    n_noise = min(max(1, round(length * NOISE_DENSITY)), length - 1)
    n_spans = max(1, min(round(n_noise / MEAN_SPAN_LENGTH), n_noise, length - n_noise))
    noise, keep = _partition(n_noise, n_spans, rng), _partition(length - n_noise, n_spans, rng)
    sentinels = sentinels_of(n_spans)
    inputs: list[int] = []
    targets: list[int] = []
    position = 0
    for i in range(n_spans):
        inputs.extend(ids[position:position + keep[i]])
        position += keep[i]
        inputs.append(sentinels[i])
        targets.append(sentinels[i])
        targets.extend(ids[position:position + noise[i]])
        position += noise[i]
    return tuple(inputs) + (eos,), tuple(targets) + (eos,)


class UnsupervisedSource:
    """Builds the items of the u-th unsupervised step (see the module docstring)."""

    def __init__(self, texts: list[str], tokenizer: Any, *, seed: int, max_length: int, max_target_length: int,
                 is_encoder_decoder: bool, vocab_size: int, task_index: int) -> None:
        self.seed = seed
        self.is_encoder_decoder = is_encoder_decoder
        self.task_index = task_index
        self.eos = tokenizer.eos_token_id
        self.max_length, self.max_target_length = max_length, max_target_length
        special = not is_encoder_decoder
        encoded = tokenizer(texts, add_special_tokens=special)["input_ids"]
        self.ids = [tuple(ids) for ids in encoded if len(ids) >= 2]
        if not self.ids:
            raise TrainDataError("unsupervised text source: every document is shorter than 2 tokens")
        self._sentinels = lambda n: sentinel_ids(tokenizer, vocab_size, n)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(seed_from(self.seed, "unsupervised", epoch)).permutation(len(self.ids))

    def items(self, u: int, count: int) -> list[Item]:
        """The ``count`` items of unsupervised step ``u``."""
        items = []
        for j in range(u * count, (u + 1) * count):
            epoch, position = divmod(j, len(self.ids))
            ids = self.ids[int(self._order(epoch)[position])]
            if not self.is_encoder_decoder:
                ids = ids[:self.max_length]
                items.append(Item(task_index=self.task_index, prompt_ids=ids[:1], target_ids=ids[1:]))
                continue
            rng = np.random.default_rng(seed_from(self.seed, "span", j))
            inputs, targets = span_corrupt(ids[:self.max_length - 1], rng, sentinels_of=self._sentinels, eos=self.eos)
            items.append(Item(task_index=self.task_index, prompt_ids=inputs[:self.max_length],
                              target_ids=targets[:self.max_target_length]))
        return items
