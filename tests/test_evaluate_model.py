"""Generation, target loss and the evaluation cache on tiny random models, against plain one-at-a-time references."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from taskscope.evaluate import (
    EvalCache,
    EvalSettings,
    evaluate_examples,
    generate,
    target_loss,
)
from taskscope.models import tiny_model
from taskscope.represent import find_backbone

PROMPTS = ["Input: a.\nOutput: ", "Hello there, how are you today?", "x", "A much longer prompt with many more bytes in it."]


@dataclass(frozen=True)
class Ex:
    task: str
    instance_id: str
    prompt: str
    targets: tuple[str, ...]


EXAMPLES = [
    Ex("t1", "0", "Say hi: ", ("hi", "hello")),
    Ex("t2", "0", "A longer prompt for the second task: ", ("yes",)),
    Ex("t1", "1", "Q? ", ("a fairly long answer",)),
]


@pytest.fixture(scope="module", params=["llama", "gpt2", "t5", "gemma"])
def loaded(request):
    return tiny_model(request.param, n_layers=2, hidden_size=32, seed=3)


@torch.no_grad()
def reference_greedy_ids(model, tokenizer, prompt: str, max_new_tokens: int, eos: int | None) -> list[int]:
    """Greedy decoding of one unpadded prompt with a full forward pass per token and no KV cache."""
    ids = tokenizer(prompt)["input_ids"]
    new: list[int] = []
    if model.config.is_encoder_decoder:
        encoder_ids = torch.tensor([ids])
        decoder = [model.config.decoder_start_token_id]
        for _ in range(max_new_tokens):
            logits = model(input_ids=encoder_ids, decoder_input_ids=torch.tensor([decoder]), use_cache=False).logits
            token = int(logits[0, -1].argmax())
            if token == eos:
                break
            new.append(token)
            decoder.append(token)
    else:
        sequence = list(ids)
        for _ in range(max_new_tokens):
            token = int(model(input_ids=torch.tensor([sequence]), use_cache=False).logits[0, -1].argmax())
            if token == eos:
                break
            new.append(token)
            sequence.append(token)
    return new


def reference_greedy(model, tokenizer, prompt: str, max_new_tokens: int, eos: int | None) -> str:
    return tokenizer.decode(reference_greedy_ids(model, tokenizer, prompt, max_new_tokens, eos), skip_special_tokens=True)


def test_batched_generation_equals_one_at_a_time_and_a_plain_greedy_loop(loaded) -> None:
    model, tokenizer = loaded.model, loaded.tokenizer
    batched = generate(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=3)
    single = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    eos = model.generation_config.eos_token_id
    assert batched == [reference_greedy(model, tokenizer, p, 6, eos) for p in PROMPTS]


def test_generation_stops_at_eos_and_strips_the_prompt(loaded) -> None:
    model, tokenizer = loaded.model, loaded.tokenizer
    free = [reference_greedy_ids(model, tokenizer, prompt, 5, eos=None) for prompt in PROMPTS]
    stop = free[1][1]  # make the second token of one continuation the eos: rows now end at different steps
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = stop
    try:
        out = generate(model, tokenizer, PROMPTS, max_new_tokens=5, batch_size=4)
    finally:
        model.generation_config.eos_token_id = saved
    expected = [ids[:ids.index(stop)] if stop in ids else ids for ids in free]
    assert len(expected[1]) <= 1
    assert out == [tokenizer.decode(ids, skip_special_tokens=True) for ids in expected]
    assert not any(text.startswith(prompt) for text, prompt in zip(out, PROMPTS))


@torch.no_grad()
def reference_losses(model, tokenizer, example: Ex) -> list[float]:
    """Per-reference mean NLL from the full-vocabulary logits of one unpadded sequence, in float64."""
    prompt = tokenizer(example.prompt)["input_ids"]
    losses = []
    for target_text in example.targets:
        target = tokenizer(target_text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if model.config.is_encoder_decoder:
            logits = model(input_ids=torch.tensor([prompt]), labels=torch.tensor([target])).logits[0]
            rows = logits
        else:
            logits = model(input_ids=torch.tensor([prompt + target])).logits[0]
            rows = logits[len(prompt) - 1:-1]
        logp = torch.log_softmax(rows.double(), dim=-1)
        losses.append(float(-logp[torch.arange(len(target)), torch.tensor(target)].mean()))
    return losses


def test_target_loss_matches_full_logits_for_every_reference_policy(loaded) -> None:
    model, tokenizer = loaded.model, loaded.tokenizer
    per_reference = [reference_losses(model, tokenizer, ex) for ex in EXAMPLES]
    expected = {
        "mean": [sum(r) / len(r) for r in per_reference],
        "min": [min(r) for r in per_reference],
        "first": [r[0] for r in per_reference],
    }
    for policy, values in expected.items():
        got = target_loss(model, tokenizer, EXAMPLES, batch_size=2, reference=policy)
        assert got == pytest.approx(values, rel=1e-5, abs=1e-5), policy
    assert per_reference[0][0] != pytest.approx(per_reference[0][1])  # the policies really differ


def test_target_loss_never_builds_full_vocabulary_logits() -> None:
    loaded = tiny_model("llama", n_layers=1, hidden_size=32)
    head = loaded.model.get_output_embeddings()
    rows_seen: list[int] = []
    handle = head.register_forward_hook(lambda module, args, out: rows_seen.append(args[0].shape[0]))
    try:
        target_loss(loaded.model, loaded.tokenizer, EXAMPLES[:2], reference="first")
    finally:
        handle.remove()
    targets = [len(loaded.tokenizer(ex.targets[0], add_special_tokens=False)["input_ids"]) + 1 for ex in EXAMPLES[:2]]
    assert sum(rows_seen) == sum(targets)


def test_target_loss_rejects_unknown_policy() -> None:
    loaded = tiny_model("llama", n_layers=1, hidden_size=32)
    with pytest.raises(ValueError, match="reference policy"):
        target_loss(loaded.model, loaded.tokenizer, EXAMPLES, reference="max")


def test_evaluate_examples_is_cached_by_fingerprint_and_examples(tmp_path: Path, monkeypatch) -> None:
    loaded = tiny_model("llama", n_layers=1, hidden_size=32)
    cache = EvalCache(tmp_path)
    settings = EvalSettings(max_new_tokens=3, batch_size=2)
    first = evaluate_examples(loaded, EXAMPLES, settings, cache=cache)
    assert list(first.columns) == ["task", "instance_id", "references", "prediction", "rouge_l", "exact_match", "loss"]
    assert first["references"].iloc[0] == ("hi", "hello")
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary files left behind

    import taskscope.evaluate.examples as examples_module

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed despite a cache hit")

    monkeypatch.setattr(examples_module, "generate", refuse)
    again = evaluate_examples(loaded, EXAMPLES, settings, cache=cache)
    assert again.equals(first)
    with pytest.raises(AssertionError, match="recomputed"):
        evaluate_examples(loaded, EXAMPLES[:2], settings, cache=cache)


def test_eval_cache_recomputes_a_corrupt_entry(tmp_path: Path) -> None:
    cache = EvalCache(tmp_path)
    key = {"a": 1}
    assert cache.get_or_compute(key, lambda: [1, 2]) == [1, 2]
    cache.path(key).write_text("{not json")
    assert cache.get_or_compute(key, lambda: [3]) == [3]
    assert cache.load({"a": 2}) is None


CONTEXT = "Definition: answer with the word that follows in the alphabet, in lower case.\n\n"  # > Gemma's window 32
ICL_EXAMPLES = [Ex("t", str(i), CONTEXT + f"Input: {letter}\nOutput: ", (chr(ord(letter) + 1), f"{letter}+1"))
                for i, letter in enumerate("abcde")] + [Ex("u", "0", "Input: z\nOutput: ", ("end",))]


def test_target_loss_runs_a_shared_prompt_prefix_once_with_the_same_losses(loaded) -> None:
    model, tokenizer = loaded.model, loaded.tokenizer
    expected = [sum(r) / len(r) for r in (reference_losses(model, tokenizer, ex) for ex in ICL_EXAMPLES)]
    seen: list[int] = []
    handle = find_backbone(model).blocks[0].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).shape[:2].numel()),
        with_kwargs=True)
    try:
        shared = target_loss(model, tokenizer, ICL_EXAMPLES, batch_size=4)
        shared_tokens, seen[:] = sum(seen), []
        unshared = target_loss(model, tokenizer, ICL_EXAMPLES, batch_size=4, share_prefix=False)
        unshared_tokens = sum(seen)
    finally:
        handle.remove()
    assert shared == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert unshared == pytest.approx(expected, rel=1e-5, abs=1e-5)
    if model.config.is_encoder_decoder:  # T5 scores every sequence whole
        assert shared_tokens == unshared_tokens
    else:  # 10 sequences (5 examples x 2 references) share the context: it runs once, not 10 times
        assert shared_tokens < unshared_tokens - 8 * len(CONTEXT)
