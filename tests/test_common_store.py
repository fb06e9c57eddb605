"""`common.store.KeyedStore`, the one cache layer under EvalCache and ActivationCache, with both codecs."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import taskscope.common.files as files_module
import taskscope.common.store as store_module
from taskscope.common.hashing import digest
from taskscope.common.store import FORMAT_VERSION, JsonCodec, KeyedStore, TensorCodec

KEY = {"model": "f" * 64, "task": "t", "settings": {"max_new_tokens": 4, "layers": (0, 2)}}


class Counting:
    """A compute callable returning ``value`` and counting its calls."""

    def __init__(self, value) -> None:
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def same(a, b) -> bool:
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


CODECS = {
    "json": (JsonCodec(), {"rows": [[1, "a"], [2, "b"]], "mean": 0.5}, None),
    "tensor": (TensorCodec(), torch.arange(24, dtype=torch.float64).reshape(2, 3, 4), torch.float32),
}


@pytest.fixture(params=sorted(CODECS))
def codec_case(request):
    return CODECS[request.param]


def test_a_hit_returns_what_the_miss_returned_without_computing(tmp_path, codec_case):
    codec, value, dtype = codec_case
    compute = Counting(value)
    first = KeyedStore(tmp_path, codec).get_or_compute(KEY, compute)
    second = KeyedStore(tmp_path, codec).get_or_compute(KEY, compute)  # a new store: reuse across runs
    assert compute.calls == 1 and same(first, second)
    if dtype is not None:
        assert first.dtype == second.dtype == dtype and torch.equal(first, value.to(dtype))
    payload, sidecar = KeyedStore(tmp_path, codec).paths(KEY)
    assert payload.name == digest(KEY) + codec.suffix and payload.parent.name == digest(KEY)[:2]
    meta = json.loads(sidecar.read_text())
    assert meta["format"] == FORMAT_VERSION and meta["key"]["settings"]["layers"] == [0, 2]
    assert meta["sha256"] == files_module.file_sha256(payload)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_payload", "truncate_sidecar", "wrong_shape"])
def test_a_corrupt_entry_warns_and_is_recomputed_and_repaired(tmp_path, codec_case, damage):
    codec, value, _ = codec_case
    store = KeyedStore(tmp_path, codec)
    compute = Counting(value)
    stored = store.get_or_compute(KEY, compute)
    payload, sidecar = store.paths(KEY)
    data = payload.read_bytes()
    if damage == "flip_byte":
        payload.write_bytes(data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:])
    elif damage == "truncate":
        payload.write_bytes(data[: len(data) // 2])
    elif damage == "delete_payload":
        payload.unlink()
    elif damage == "truncate_sidecar":
        sidecar.write_text(sidecar.read_text()[:20])
    else:  # the file is intact but does not hold what the sidecar says it holds
        meta = json.loads(sidecar.read_text())
        name = "shape" if "shape" in meta else "type"
        meta[name] = [9] if name == "shape" else "str"
        sidecar.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="unusable"):
        again = store.get_or_compute(KEY, compute)
    assert compute.calls == 2 and same(again, stored)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same(store.load(KEY), stored)  # repaired on disk


def test_another_key_with_the_same_file_name_is_a_miss_not_a_hit(tmp_path):
    """Names built from a digest prefix collide; the sidecar's key decides, quietly."""
    store = KeyedStore(tmp_path, JsonCodec(), name=lambda key, key_digest: key_digest[:1])
    first = {"i": 0}
    other = next({"i": i} for i in range(1, 200) if digest({"i": i})[0] == digest(first)[0])
    assert store.paths(first) == store.paths(other) and digest(first) != digest(other)
    store.store(first, "first value")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(other) is None
    compute = Counting("other value")
    assert store.get_or_compute(other, compute) == "other value" and compute.calls == 1
    assert store.load(first) is None and store.load(other) == "other value"


@pytest.mark.parametrize("killed", ["payload", "sidecar"])
def test_a_write_killed_midway_leaves_no_entry_and_no_temporary(tmp_path, monkeypatch, codec_case, killed):
    codec, value, _ = codec_case
    store = KeyedStore(tmp_path, codec)

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    if killed == "payload":
        monkeypatch.setattr(files_module.os, "fsync", die)  # inside the payload's atomic write
    else:
        monkeypatch.setattr(store_module, "atomic_write_json", die)  # after the payload, before the sidecar
    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute(KEY, Counting(value))
    monkeypatch.undo()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and files_module.is_temporary(p.name)]
    assert not store.paths(KEY)[1].exists() and store.load(KEY) is None
    compute = Counting(value)
    store.get_or_compute(KEY, compute)
    assert compute.calls == 1 and store.load(KEY) is not None


def test_an_entry_of_an_older_format_is_never_reused(tmp_path):
    store = KeyedStore(tmp_path, JsonCodec())
    store.store(KEY, [1])
    sidecar = store.paths(KEY)[1]
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "format": FORMAT_VERSION - 1}))
    assert store.load(KEY) is None
    compute = Counting([2])
    assert store.get_or_compute(KEY, compute) == [2] and compute.calls == 1
