"""ActivationCache and extract_to_cache: hits, misses, key sensitivity, corruption, interrupted runs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import taskscope.represent.cache as cache_module
from taskscope.models import tiny_model
from taskscope.represent import ActivationCache, ActivationKey, extract_hidden_states, extract_to_cache

PROMPTS = ["Input: one. Output:", "Input: two two. Output:", "Input: three. Output:"]


def make_key(**overrides) -> ActivationKey:
    arguments = {"fingerprint": "f" * 64, "task": "task001_demo", "prompt_format": "definition_exemplars-2",
                 "prompts": PROMPTS}
    arguments.update(overrides)
    options = {name: arguments.pop(name) for name in ("pooling", "layers", "dtype", "max_length") if name in arguments}
    return ActivationKey.for_prompts(**arguments, **options)


class CountingCompute:
    """A compute callable returning a fixed random tensor and counting its calls."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.tensor = torch.randn(3, len(PROMPTS), 8, generator=torch.Generator().manual_seed(seed))

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return self.tensor.clone()


def test_miss_computes_and_stores_then_hit_reads_without_computing(tmp_path):
    compute = CountingCompute()
    first = ActivationCache(tmp_path).get_or_compute(make_key(), compute)
    second = ActivationCache(tmp_path).get_or_compute(make_key(), compute)  # a new object: reuse across runs
    assert compute.calls == 1
    assert torch.equal(first, compute.tensor) and torch.equal(second, compute.tensor)
    tensor_path, sidecar_path = ActivationCache(tmp_path).paths(make_key())
    assert tensor_path.suffix == ".safetensors" and tensor_path.is_file()
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["key"]["task"] == "task001_demo" and sidecar["shape"] == [3, 3, 8]
    assert not [p for p in tensor_path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("change", [
    {"prompts": [PROMPTS[0], PROMPTS[1], PROMPTS[2] + " "]},
    {"prompts": list(reversed(PROMPTS))},
    {"prompts": PROMPTS[:2]},
    {"fingerprint": "e" + "f" * 63},
    {"pooling": "mean"},
    {"layers": [0, 1]},
    {"task": "task002_other"},
    {"prompt_format": "definition"},
    {"dtype": "bfloat16"},
    {"max_length": 64},
])
def test_changing_any_key_part_misses(tmp_path, change):
    cache = ActivationCache(tmp_path)
    compute = CountingCompute()
    cache.get_or_compute(make_key(), compute)
    other = make_key(**change)
    assert other.digest() != make_key().digest()
    assert cache.load(other) is None
    cache.get_or_compute(other, compute)
    assert compute.calls == 2


def test_prompt_boundaries_count_in_the_prompt_hash():
    assert make_key(prompts=["ab", "c"]).digest() != make_key(prompts=["a", "bc"]).digest()


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete_tensor", "truncate_sidecar"])
def test_a_damaged_entry_is_detected_and_recomputed(tmp_path, damage):
    cache = ActivationCache(tmp_path)
    compute = CountingCompute()
    cache.get_or_compute(make_key(), compute)
    tensor_path, sidecar_path = cache.paths(make_key())
    data = tensor_path.read_bytes()
    if damage == "truncate":
        tensor_path.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        tensor_path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "delete_tensor":
        tensor_path.unlink()
    else:
        sidecar_path.write_text(sidecar_path.read_text()[:20])
    with pytest.warns(UserWarning, match="unusable"):
        again = cache.get_or_compute(make_key(), compute)
    assert compute.calls == 2
    assert torch.equal(again, compute.tensor)
    assert torch.equal(cache.load(make_key()), compute.tensor)  # repaired on disk


def test_an_entry_without_sidecar_is_a_miss(tmp_path):
    cache = ActivationCache(tmp_path)
    compute = CountingCompute()
    cache.get_or_compute(make_key(), compute)
    cache.paths(make_key())[1].unlink()  # e.g. killed between the tensor file and the sidecar
    assert cache.load(make_key()) is None


def test_compute_must_return_a_tensor(tmp_path):
    with pytest.raises(TypeError, match="task001_demo"):
        ActivationCache(tmp_path).get_or_compute(make_key(), lambda: [1.0])


def test_key_is_frozen_and_round_trips_its_parts():
    key = make_key(layers=[0, -1], dtype=torch.bfloat16)
    assert key.dtype == "bfloat16" and key.layers == (0, -1)
    assert ActivationKey(**{**key.parts(), "layers": tuple(key.parts()["layers"])}) == key
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.task = "other"


def test_extract_to_cache_streams_per_task_and_resumes_after_an_interruption(tmp_path, monkeypatch):
    loaded = tiny_model("llama", n_layers=2, hidden_size=32, seed=0)
    cache = ActivationCache(tmp_path)
    prompts = {"task_a": PROMPTS, "task_b": ["Input: b1. Output:", ""], "task_c": ["Input: c. Output:"]}
    calls = []

    def counting_extract(*args, **kwargs):
        calls.append(kwargs["description"])
        return extract_hidden_states(*args, **kwargs)

    monkeypatch.setattr(cache_module, "extract_hidden_states", counting_extract)
    options = {"fingerprint": loaded.fingerprint, "prompt_format": "fmt", "progress": False}
    with pytest.raises(ValueError, match="has no tokens"):  # task_b fails: the run is interrupted there
        extract_to_cache(cache, loaded.model, loaded.tokenizer, prompts, **options)
    assert calls == ["extract task_a", "extract task_b"]
    prompts["task_b"] = ["Input: b1. Output:", "Input: b2. Output:"]
    states = extract_to_cache(cache, loaded.model, loaded.tokenizer, prompts, **options)
    assert calls[2:] == ["extract task_b", "extract task_c"]  # task_a came from the cache
    assert list(states) == ["task_a", "task_b", "task_c"]
    for task, texts in prompts.items():
        direct = extract_hidden_states(loaded.model, loaded.tokenizer, texts, progress=False)
        assert torch.equal(states[task], direct)
    key_a = ActivationKey.for_prompts(loaded.fingerprint, "task_a", "fmt", prompts["task_a"], dtype="float32")
    assert torch.equal(cache.load(key_a), states["task_a"])
