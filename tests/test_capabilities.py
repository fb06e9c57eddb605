"""Library capabilities are found by trying them, and a fast path that is not taken says so."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers
from packaging.version import Version
from torch import nn
from transformers import DynamicCache

from taskscope.common.fastpaths import collect_fast_paths, merge_fast_paths, note_fast_path
from taskscope.evaluate.loss import target_loss
from taskscope.models import capabilities
from taskscope.models.capabilities import cache_keyword, cache_kwargs
from taskscope.models.tiny import tiny_model
from taskscope.represent import extract_hidden_states, find_backbone
from taskscope.tasks.formats import FormattedExample

CONTEXT = "Definition: copy the word after the colon, exactly as it is written, and nothing else at all. "
PROMPTS = [CONTEXT + f"Input: word{i} Output:" for i in range(4)]


def expected_keyword() -> str:
    """transformers' own changelog, as a table: ``cache=`` from 5.24 on, ``past_key_values=`` before."""
    return "cache" if Version(transformers.__version__) >= Version("5.24.0") else "past_key_values"


@pytest.mark.parametrize("arch", ["llama", "gemma", "gpt2"])
def test_the_probed_cache_keyword_is_the_one_this_transformers_takes(arch):
    loaded = tiny_model(arch, n_layers=2, hidden_size=32, seed=0)
    stack = find_backbone(loaded.model).stack
    assert cache_keyword(stack) == expected_keyword()
    cache = DynamicCache()
    ids = torch.tensor([[1, 2, 3]])
    stack(input_ids=ids, attention_mask=torch.ones_like(ids), **cache_kwargs(stack, cache))
    assert cache.get_seq_length() == 3


class _NoCacheStack(nn.Module):
    """A decoder stack that ignores any cache it is handed (like a custom model without KV caching)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self) -> nn.Module:
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, attention_mask, **ignored):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)


def test_a_stack_that_cannot_continue_a_cache_is_detected():
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=0)
    assert cache_keyword(_NoCacheStack(find_backbone(loaded.model).stack)) is None
    with pytest.raises(TypeError, match="cannot continue a KV cache"):
        cache_kwargs(_NoCacheStack(find_backbone(loaded.model).stack), DynamicCache())


def test_prefix_sharing_is_used_on_this_stack_and_recorded():
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=0)
    with collect_fast_paths() as record:
        extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
        examples = [FormattedExample(task="t", instance_id=str(i), template_index=0, prompt=p, targets=("x",))
                    for i, p in enumerate(PROMPTS)]
        target_loss(loaded.model, loaded.tokenizer, examples, min_shared_tokens=4)
    assert record["extract.share_prefix"] == {"used": 1, "skipped": {}}
    assert record["target_loss.share_prefix"] == {"used": 1, "skipped": {}}


def test_a_skipped_prefix_path_is_logged_with_its_reason_and_recorded(monkeypatch, caplog):
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=0)
    shared = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    monkeypatch.setattr(capabilities, "_KNOWN", {})
    monkeypatch.setattr(capabilities, "CACHE_KEYWORDS", ())  # as on a transformers that takes neither keyword
    with caplog.at_level(logging.WARNING, logger="taskscope.fastpaths"), collect_fast_paths() as record:
        unshared = extract_hidden_states(loaded.model, loaded.tokenizer, PROMPTS, progress=False)
    skipped = record["extract.share_prefix"]["skipped"]
    assert record["extract.share_prefix"]["used"] == 0 and sum(skipped.values()) == 1
    (reason,) = skipped
    assert "does not continue a KV cache" in reason
    assert any("extract.share_prefix" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(unshared, shared)


def test_fast_path_records_merge_by_name_and_reason():
    with collect_fast_paths() as first:
        note_fast_path("a", True)
        note_fast_path("a", False, "why")
    with collect_fast_paths() as second:
        note_fast_path("a", False, "why")
        note_fast_path("b", True)
    assert merge_fast_paths([first, second]) == {"a": {"used": 1, "skipped": {"why": 2}},
                                                  "b": {"used": 1, "skipped": {}}}


def test_a_device_without_bfloat16_autocast_trains_in_float32_and_says_why(monkeypatch, caplog):
    from taskscope.train.precision import autocast_for

    def no_bf16(*args, **kwargs):
        raise RuntimeError("planted: no bfloat16 kernels on this device")

    monkeypatch.setattr(torch, "autocast", no_bf16)
    with caplog.at_level(logging.WARNING, logger="taskscope.fastpaths"), collect_fast_paths() as record:
        factory = autocast_for("bfloat16", torch.device("cpu"))
    monkeypatch.undo()
    (reason,) = record["train.autocast_bf16"]["skipped"]
    assert record["train.autocast_bf16"]["used"] == 0 and "planted: no bfloat16 kernels" in reason
    assert any("train.autocast_bf16" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    with factory():  # the fallback: no autocast, float32 matmuls
        assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
