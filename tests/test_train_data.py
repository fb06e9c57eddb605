"""Training data: prompt masking, truncation, reference draws, length-grouped batches, span corruption."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.models import tiny_model
from taskscope.models.tiny import byte_tokenizer
from taskscope.tasks.formats import FormattedExample
from taskscope.train.data import (
    IGNORE_INDEX,
    EncodedExample,
    TrainDataError,
    choose_reference,
    collate,
    encode_tasks,
    epoch_batches,
    fit_lengths,
    pad_token_id,
)
from taskscope.train.unsupervised import span_corrupt


def example(task: str, i: int, targets: tuple[str, ...] = ("yes",)) -> FormattedExample:
    return FormattedExample(task, f"id{i}", f"prompt {i}:", targets, 0)


def test_causal_labels_cover_exactly_the_target_and_eos() -> None:
    tokenizer = byte_tokenizer()
    encoded = encode_tasks(tokenizer, {"t": [example("t", 1, ("ab",)), example("t", 22, ("xyz",))]})["t"]
    items = [fit_lengths(ex, ex.target_ids[0], task_index=0, max_length=64, max_target_length=8,
                         truncation="fail", is_encoder_decoder=False) for ex in encoded]
    batch = collate(items, pad_id=tokenizer.pad_token_id, is_encoder_decoder=False)
    for row, ex in enumerate(encoded):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert labelled == list(ex.target_ids[0])
        assert tokenizer.decode(labelled[:-1]) == ["ab", "xyz"][row]
        assert labelled[-1] == tokenizer.eos_token_id
        length = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, :length].tolist() == list(ex.prompt_ids + ex.target_ids[0])


def test_encoder_decoder_collation_shifts_the_target_right() -> None:
    loaded = tiny_model("t5")
    ex = encode_tasks(loaded.tokenizer, {"t": [example("t", 3, ("ok",))]})["t"][0]
    item = fit_lengths(ex, ex.target_ids[0], task_index=0, max_length=64, max_target_length=8,
                       truncation="fail", is_encoder_decoder=True)
    batch = collate([item], pad_id=0, is_encoder_decoder=True, decoder_start_id=loaded.model.config.decoder_start_token_id)
    assert batch["input_ids"][0].tolist() == list(ex.prompt_ids)
    assert batch["labels"][0].tolist() == list(ex.target_ids[0])
    assert batch["decoder_input_ids"][0, 1:].tolist() == list(ex.target_ids[0][:-1])


def test_truncation_keeps_the_target_and_the_end_of_the_prompt() -> None:
    ex = EncodedExample("t", "i7", tuple(range(10, 30)), ((5, 6, 2),))
    item = fit_lengths(ex, ex.target_ids[0], task_index=0, max_length=10, max_target_length=4,
                       truncation="truncate", is_encoder_decoder=False)
    assert item.target_ids == (5, 6, 2)
    assert item.prompt_ids == tuple(range(23, 30))
    assert len(item) == 10


def test_truncation_fail_names_task_and_instance() -> None:
    ex = EncodedExample("sentiment", "inst-42", tuple(range(50)), ((5, 2),))
    with pytest.raises(TrainDataError, match="sentiment.*inst-42"):
        fit_lengths(ex, ex.target_ids[0], task_index=0, max_length=10, max_target_length=4,
                    truncation="fail", is_encoder_decoder=False)
    long_target = EncodedExample("sentiment", "inst-43", (1,), (tuple(range(9)),))
    with pytest.raises(TrainDataError, match="inst-43.*max_target_length"):
        fit_lengths(long_target, long_target.target_ids[0], task_index=0, max_length=10, max_target_length=4,
                    truncation="fail", is_encoder_decoder=False)


def test_empty_task_is_named() -> None:
    with pytest.raises(TrainDataError, match="'empty_task'"):
        encode_tasks(byte_tokenizer(), {"full": [example("full", 0)], "empty_task": []})


def test_tokenizer_without_pad_pads_with_eos_and_without_eos_fails() -> None:
    tokenizer = byte_tokenizer()
    tokenizer.pad_token = None
    assert pad_token_id(tokenizer) == tokenizer.eos_token_id
    tokenizer.eos_token = None
    with pytest.raises(TrainDataError, match="pad token"):
        pad_token_id(tokenizer)


def test_references_are_seeded_per_epoch_and_all_get_drawn() -> None:
    ex = EncodedExample("t", "i", (1,), ((4, 2), (5, 2), (6, 2)))
    draws = [choose_reference(0, ex, epoch) for epoch in range(60)]
    assert draws == [choose_reference(0, ex, epoch) for epoch in range(60)]
    assert set(draws) == set(ex.target_ids)
    assert draws != [choose_reference(1, ex, epoch) for epoch in range(60)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=300), st.integers(1, 9), st.integers(0, 10**6))
def test_epoch_batches_use_every_index_once(lengths: list[int], batch_size: int, seed: int) -> None:
    for grouped in (True, False):
        batches = epoch_batches(lengths, batch_size, np.random.default_rng(seed), grouped)
        flat = sorted(i for batch in batches for i in batch)
        assert flat == list(range(len(lengths)))
        assert all(1 <= len(batch) <= batch_size for batch in batches)
        assert batches == epoch_batches(lengths, batch_size, np.random.default_rng(seed), grouped)


def test_length_grouping_reduces_padding() -> None:
    lengths = np.random.default_rng(0).integers(1, 500, size=2000).tolist()

    def padding(grouped: bool) -> int:
        batches = epoch_batches(lengths, 16, np.random.default_rng(1), grouped)
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(True) < 0.2 * padding(False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(10, 200), min_size=2, max_size=120), st.integers(0, 10**6))
def test_span_corruption_reassembles_to_the_original(ids: list[int], seed: int) -> None:
    sentinels = [1000 + i for i in range(200)]
    inputs, targets = span_corrupt(ids, np.random.default_rng(seed), sentinels_of=lambda n: sentinels[:n], eos=2)
    assert inputs[-1] == 2 and targets[-1] == 2
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets[:-1]:
        if token >= 1000:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    rebuilt = [t for token in inputs[:-1] for t in (spans[token] if token >= 1000 else [token])]
    assert rebuilt == ids
    assert all(spans.values()) and 0 < sum(map(len, spans.values())) < len(ids)
