"""extract_hidden_states: padding-invariance, layer semantics, pooling, layer selection, no LM head."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.models import tiny_model
from taskscope.represent import extract_hidden_states, find_backbone
from taskscope.represent.extract import last_real_index, length_sorted_batches
from taskscope.represent.prefix import plan_shared_prefixes

ARCHS = ("llama", "gemma", "gpt2", "t5")
# mixed lengths (bytes = tokens for the tiny byte tokenizer); the longest exceeds Gemma's sliding window (32)
PROMPTS = [
    "Definition: say if the review is positive. Input: great film, loved it. Output:",
    "hi",
    "Input: two plus two? Output:",
    "abc",
    "Input: the cat sat on the mat and looked around. Output:",
    "xyz",
]
REFERENCE_ROWS = (0, 1, 4)  # longest, shortest, in between: rows checked against HF's own hidden states


@pytest.fixture(scope="module", params=ARCHS)
def loaded(request):
    return tiny_model(request.param, n_layers=2, hidden_size=32, seed=1)


def one_at_a_time(model, tokenizer, prompts, **kwargs) -> torch.Tensor:
    return torch.cat([extract_hidden_states(model, tokenizer, [p], batch_size=1, progress=False, **kwargs)
                      for p in prompts], dim=1)


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


def hf_hidden_states(loaded, prompt: str) -> tuple[torch.Tensor, ...]:
    """HF's own hidden states for one unpadded prompt (the reference)."""
    stack = find_backbone(loaded.model).stack
    encoded = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        return stack(**encoded, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_batched_states_equal_one_at_a_time_states_in_float32(loaded, pooling):
    batched = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=4, pooling=pooling,
                                    progress=False)
    single = one_at_a_time(loaded.model, loaded.tokenizer, PROMPTS, pooling=pooling)
    assert batched.shape == (loaded.num_layers + 1, len(PROMPTS), loaded.hidden_size)
    assert batched.dtype == torch.float32 and batched.device.type == "cpu"
    assert max_relative_error(batched, single) < 1e-5


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_batched_states_equal_one_at_a_time_states_in_bfloat16(arch):
    loaded = tiny_model(arch, n_layers=2, hidden_size=32, seed=2)
    loaded.model.to(torch.bfloat16)
    batched = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=4, progress=False)
    single = one_at_a_time(loaded.model, loaded.tokenizer, PROMPTS)
    assert batched.dtype == torch.float32
    assert max_relative_error(batched, single) < 3e-2


def test_every_layer_equals_hf_hidden_states_by_default_and_final_norm_false_is_before_the_norm(loaded):
    """Default: all L + 1 layers equal HF's ``output_hidden_states=True`` (the last one after the final norm);
    ``final_norm=False``: the same layers below L, and layer L is the raw residual stream HF's norm maps onto it."""
    ours = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=4, progress=False)
    raw = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=4, progress=False,
                                final_norm=False)
    backbone = find_backbone(loaded.model)
    assert backbone.num_layers == loaded.num_layers and backbone.final_norm is not None
    for index in REFERENCE_ROWS:
        hf = hf_hidden_states(loaded, PROMPTS[index])
        assert len(hf) == loaded.num_layers + 1
        for layer in range(loaded.num_layers + 1):
            torch.testing.assert_close(ours[layer, index], hf[layer][0, -1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(raw[:-1, index], ours[:-1, index], rtol=0, atol=0)
        with torch.no_grad():
            normed = backbone.final_norm(raw[-1, index])
        torch.testing.assert_close(normed, hf[-1][0, -1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(raw[-1, index], hf[-1][0, -1])


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_final_norm_applies_before_pooling_and_on_the_shared_prefix_path(arch):
    """Mean pooling averages the normed states (as HF's last entry); a shared prefix gives the same normed states."""
    loaded = tiny_model(arch, n_layers=2, hidden_size=32, seed=4)
    mean = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=3, pooling="mean", progress=False)
    for index in REFERENCE_ROWS:
        torch.testing.assert_close(mean[-1, index], hf_hidden_states(loaded, PROMPTS[index])[-1][0].mean(dim=0),
                                   rtol=1e-5, atol=1e-5)
    shared = ["Definition: a long shared instruction that every prompt starts with. Input: " + x for x in "abcdef"]
    fast = extract_hidden_states(loaded.model, loaded.tokenizer, shared, batch_size=2, share_prefix=True,
                                 min_shared_tokens=8, progress=False)
    plain = extract_hidden_states(loaded.model, loaded.tokenizer, shared, batch_size=2, share_prefix=False,
                                  progress=False)
    assert max_relative_error(fast[-1], plain[-1]) < 1e-4
    torch.testing.assert_close(plain[-1, 2], hf_hidden_states(loaded, shared[2])[-1][0, -1], rtol=1e-5, atol=1e-5)


def test_mean_pooling_averages_the_real_tokens(loaded):
    ours = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, batch_size=3, pooling="mean",
                                 progress=False)
    for index in REFERENCE_ROWS:
        hf = hf_hidden_states(loaded, PROMPTS[index])
        for layer in range(loaded.num_layers):
            torch.testing.assert_close(ours[layer, index], hf[layer][0].mean(dim=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_real_token_equal_to_the_pad_id_is_taken_as_last(arch):
    loaded = tiny_model(arch, n_layers=2, hidden_size=32, seed=3)
    tokenizer = loaded.tokenizer
    tokenizer.pad_token = tokenizer.eos_token  # pad id == eos id, as for many real models
    prompts = ["a much longer prompt that forces padding", "short" + tokenizer.eos_token]
    ids = tokenizer(prompts[1])["input_ids"]
    assert ids[-1] == tokenizer.pad_token_id
    batched = extract_hidden_states(loaded.model, tokenizer, prompts, batch_size=2, progress=False)
    single = one_at_a_time(loaded.model, tokenizer, prompts)
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    before_eos = extract_hidden_states(loaded.model, tokenizer, ["short"], progress=False)
    assert not torch.allclose(batched[1:, 1], before_eos[1:, 0])
    hf = hf_hidden_states(loaded, prompts[1])
    torch.testing.assert_close(batched[1, 1], hf[1][0, -1], rtol=1e-5, atol=1e-5)


def test_layers_select_and_order_layers_and_reject_out_of_range(loaded):
    full = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    picked = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, layers=[-1, 0, 1], progress=False)
    torch.testing.assert_close(picked, full[[loaded.num_layers, 0, 1]], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="layer 3 out of range"):
        extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, layers=[3], progress=False)


def test_the_lm_head_never_runs(loaded):
    head = loaded.model.get_output_embeddings()

    def fail(*args):
        raise AssertionError("the LM head ran")

    handle = head.register_forward_hook(fail)
    try:
        states = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS[:2], progress=False)
    finally:
        handle.remove()
    assert torch.isfinite(states).all()


def test_autocast_dtype_runs_in_bfloat16_and_returns_float32():
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=4)
    exact = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    low = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, dtype="bfloat16", progress=False)
    assert low.dtype == torch.float32
    assert loaded.model.get_input_embeddings().weight.dtype == torch.float32
    assert not torch.equal(low, exact)
    assert max_relative_error(low, exact) < 5e-2


def test_peft_wrapped_model_reads_the_base_blocks():
    from taskscope.models.lora import add_lora

    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=5)
    plain = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    wrapped = add_lora(loaded.model, r=4, target_modules=["q_proj", "v_proj"])
    assert find_backbone(wrapped).num_layers == 2
    # a fresh LoRA adapter is the identity (B = 0), so the states are unchanged
    torch.testing.assert_close(extract_hidden_states(wrapped, loaded.tokenizer, PROMPTS, progress=False), plain)


def test_bad_input_gets_clear_errors_and_empty_input_an_empty_tensor():
    loaded = tiny_model("gpt2", n_layers=2, hidden_size=32, seed=6)
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, pooling="max", progress=False)
    with pytest.raises(ValueError, match="prompt 1 .* has no tokens"):
        extract_hidden_states(loaded.model, loaded.tokenizer, ["ok", ""], progress=False)
    empty = extract_hidden_states(loaded.model, loaded.tokenizer, [], progress=False)
    assert empty.shape == (3, 0, 32)


def test_training_mode_is_restored_and_dropout_is_off_during_extraction():
    loaded = tiny_model("gpt2", n_layers=2, hidden_size=32, seed=7)
    for module in loaded.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    reference = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    loaded.model.train()
    again = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    assert loaded.model.training
    torch.testing.assert_close(again, reference)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=0, max_size=40), st.integers(1, 9))
def test_length_sorted_batches_partition_the_prompts_longest_first(lengths, batch_size):
    batches = length_sorted_batches(lengths, batch_size)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(batch) <= batch_size for batch in batches)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6).filter(any), min_size=1, max_size=5))
def test_last_real_index_is_the_last_position_with_mask_one(rows):
    mask = torch.tensor(rows, dtype=torch.long)
    expected = [max(j for j, bit in enumerate(row) if bit) for row in rows]
    assert last_real_index(mask).tolist() == expected


# ---------------------------------------------------------------- shared prefixes
SHARED = "Definition: say whether the review below is positive or negative; answer with one word. "  # > window 32
PREFIXED = [SHARED + "Input: great film. Output:", SHARED + "Input: dull. Output:", "Input: unrelated. Output:",
            SHARED + "Input: loved every minute of it. Output:", SHARED + "Input: ok. Output:"]


def tokens_run(loaded, **kwargs) -> tuple[torch.Tensor, int]:
    """States and the number of token positions the first block processed."""
    seen = []
    handle = find_backbone(loaded.model).blocks[0].register_forward_pre_hook(
        lambda module, args, kwargs_: seen.append((args[0] if args else kwargs_["hidden_states"]).shape[:2].numel()),
        with_kwargs=True)
    try:
        states = extract_hidden_states(loaded.model, loaded.tokenizer, PREFIXED, batch_size=2, progress=False, **kwargs)
    finally:
        handle.remove()
    return states, sum(seen)


@pytest.mark.parametrize("layers", [None, [1]])
def test_a_shared_prefix_runs_once_and_gives_the_same_states(loaded, layers):
    shared, shared_tokens = tokens_run(loaded, layers=layers)
    unshared, unshared_tokens = tokens_run(loaded, layers=layers, share_prefix=False)
    single = one_at_a_time(loaded.model, loaded.tokenizer, PREFIXED, layers=layers)
    assert max_relative_error(shared, single) < 1e-5
    assert max_relative_error(unshared, single) < 1e-5
    if find_backbone(loaded.model).is_encoder:  # bidirectional: nothing to share
        assert shared_tokens == unshared_tokens
    else:  # the four prompts' common prefix ran once instead of four times (plus right-padding)
        assert shared_tokens < unshared_tokens - 2 * len(SHARED)


def test_mean_pooling_does_not_share_prefixes():
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=1)
    shared, shared_tokens = tokens_run(loaded, pooling="mean")
    _, unshared_tokens = tokens_run(loaded, pooling="mean", share_prefix=False)
    assert shared_tokens == unshared_tokens
    assert max_relative_error(shared, one_at_a_time(loaded.model, loaded.tokenizer, PREFIXED, pooling="mean")) < 1e-5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, max_size=12)), min_size=1,
                max_size=20),
       st.integers(1, 5), st.integers(1, 8))
def test_prefix_plan_covers_every_prompt_once_with_true_shorter_prefixes(specs, batch_size, min_shared):
    stems = [[7] * 10, [7] * 6 + [8] * 6, [9] * 3, []]  # stems with common heads, so real groups form
    token_ids = [stems[stem] + tail for stem, tail in specs]
    plan = plan_shared_prefixes(token_ids, batch_size, min_shared)
    seen = [i for group in plan.groups for batch in group.batches for i in batch] + plan.unshared
    assert sorted(seen) == list(range(len(token_ids)))
    for group in plan.groups:
        members = [i for batch in group.batches for i in batch]
        assert len(members) >= 2 and group.prefix_length >= min_shared
        assert all(len(batch) <= batch_size for batch in group.batches)
        head = token_ids[members[0]][:group.prefix_length]
        assert all(token_ids[i][:group.prefix_length] == head and len(token_ids[i]) > group.prefix_length
                   for i in members)
    lengths = [len(ids) for ids in token_ids]
    assert plan.tokens_run(lengths) <= sum(lengths)


# ---------------------------------------------------------------- max_length (issue 12, item 2)
def test_context_length_is_read_from_the_model_config():
    from taskscope.represent.extract import context_length

    for arch in ("llama", "gpt2"):
        loaded = tiny_model(arch, n_layers=1, hidden_size=16, seed=0)
        assert context_length(loaded.model) == 512  # tiny models: max_position_embeddings / n_positions
    assert context_length(torch.nn.Linear(2, 2)) is None


def test_tokenize_cuts_on_the_stated_side_and_counts():
    from taskscope.represent.extract import tokenize

    tok = tiny_model("llama", n_layers=1, hidden_size=16, seed=0).tokenizer
    full = tok(["abcdefghij", "ab"], add_special_tokens=True)["input_ids"]
    left = tokenize(tok, ["abcdefghij", "ab"], 5, "left")
    right = tokenize(tok, ["abcdefghij", "ab"], 5, "right")
    assert left.ids == [full[0][-5:], full[1]] and right.ids == [full[0][:5], full[1]]
    assert left.truncated == [0] and left.summary()["n_truncated"] == 1
    assert left.summary()["longest_tokens"] == len(full[0])
    assert tokenize(tok, ["abcdefghij"], None).truncated == []


def test_a_prompt_past_gpt2_positions_gives_the_states_of_its_end():
    """Past n_positions GPT-2's position embedding raised IndexError; now the last 512 tokens are used,
    and the states equal HF's own forward over exactly those tokens (left truncation, as training)."""
    from taskscope.represent.extract import tokenize

    loaded = tiny_model("gpt2", n_layers=2, hidden_size=32, seed=3)
    long_prompt = "the quick brown fox jumps over the lazy dog. " * 20  # 900 byte tokens > 512 positions
    states = extract_hidden_states(loaded.model, loaded.tokenizer, [long_prompt, "short"], progress=False)
    assert states.shape[:2] == (3, 2) and torch.isfinite(states).all()
    ids = tokenize(loaded.tokenizer, [long_prompt], None).ids[0][-512:]
    with torch.inference_mode():
        hidden = loaded.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    assert max_relative_error(states[1, 0], hidden[1][0, -1]) < 1e-4


def test_extract_job_cuts_a_100k_character_instance_and_records_the_count(tmp_path, caplog):
    import json
    import logging

    from taskscope.studies.mossa.config import ExtractionConfig
    from taskscope.studies.mossa.extract import TRUNCATION_FILE, extract_job

    huge = "word " * 20_000  # 100k characters: 100k byte tokens, far past the tiny model's 512 positions
    prompts = {"long_task": [huge, "a short one", "another"], "short_task": ["x y", "z"]}
    with caplog.at_level(logging.WARNING, logger="taskscope.represent"):
        extract_job("tiny:gpt2", {"device": "cpu"}, ExtractionConfig(batch_size=2).model_dump(), prompts, tmp_path)
    report = json.loads((tmp_path / TRUNCATION_FILE).read_text())
    assert report["long_task"]["n_truncated"] == 1 and report["long_task"]["max_length"] == 512
    assert report["long_task"]["longest_tokens"] > 100_000 - 10
    assert report["short_task"]["n_truncated"] == 0
    assert any("long_task" in r.getMessage() and "1 of 3" in r.getMessage() for r in caplog.records)
    assert not any("short_task" in r.getMessage() for r in caplog.records)


def test_explicit_max_length_overrides_the_context_length(tmp_path):
    import json

    from taskscope.studies.mossa.config import ExtractionConfig
    from taskscope.studies.mossa.extract import TRUNCATION_FILE, extract_job

    extraction = ExtractionConfig(max_length=8, truncation_side="right").model_dump()
    extract_job("tiny:llama", {"device": "cpu"}, extraction, {"t": ["0123456789abcdef", "ab"]}, tmp_path)
    report = json.loads((tmp_path / TRUNCATION_FILE).read_text())["t"]
    assert report == {"n_prompts": 2, "n_truncated": 1, "longest_tokens": report["longest_tokens"],
                      "max_length": 8, "truncation_side": "right"}
    assert report["longest_tokens"] > 8


def test_a_max_length_past_the_context_length_is_a_clear_error_not_an_index_error():
    loaded = tiny_model("gpt2", n_layers=1, hidden_size=16, seed=0)
    with pytest.raises(ValueError, match="longer than the model's context length 512"):
        extract_hidden_states(loaded.model, loaded.tokenizer, ["x" * 600], max_length=1000, progress=False,
                              description="extract task_x")
