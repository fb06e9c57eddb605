"""`KeyedStore`: the one key -> value cache on disk (evaluation results, hidden states).

An entry of a JSON-able ``key`` is two files under ``root``, named by ``name(key, digest(key))`` (default
``{digest[:2]}/{digest}``; `taskscope.common.hashing.digest`):

    {stem}{codec.suffix}   the payload, as the codec encodes the value
    {stem}.meta.json       {"format": FORMAT_VERSION, "codec": ..., "key": <the key as JSON>, "digest": ...,
                            "sha256": <of the payload file>, **codec.describe(value)}  (e.g. shape, dtype)

`KeyedStore.store` writes the payload first and the sidecar last, each atomically
(`taskscope.common.files`), so the sidecar marks a complete entry and a killed write leaves none.
`KeyedStore.load` reads the sidecar, checks format and key (another key or format: a plain miss), checks
the payload's sha256 (`common.files.file_sha256`, the digest of the stage done-markers too), decodes it and
checks the codec's description (shape, dtype); a missing payload, a damaged file or a mismatch is a miss with
a warning.  `get_or_compute` stores and returns ``compute()`` on a miss, in the form a hit returns.

Codecs: `JsonCodec` (JSON values) and `TensorCodec` (one tensor in a safetensors file, float32 on CPU).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from taskscope.common.files import atomic_write_bytes, atomic_write_json, file_sha256
from taskscope.common.hashing import digest

FORMAT_VERSION = 2  # 1: ActivationCache's tensor + sidecar and EvalCache's {"key", "value"} file
SIDECAR_SUFFIX = ".meta.json"
_MISS = object()


class Codec(Protocol):
    """How a value becomes a payload file and back."""

    name: str
    suffix: str

    def prepare(self, value: Any) -> Any:
        """The value as a hit returns it (JSON round trip, CPU float32 tensor, ...)."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...

    def describe(self, value: Any) -> dict[str, Any]:
        """Facts about a value the sidecar records and a read checks again (e.g. shape)."""


class JsonCodec:
    name, suffix = "json", ".json"

    def prepare(self, value: Any) -> Any:
        return json.loads(self.encode(value))

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def describe(self, value: Any) -> dict[str, Any]:
        return {"type": type(value).__name__}


class TensorCodec:
    """One tensor named ``tensor_name`` in a safetensors file, stored as contiguous float32 on CPU."""

    name, suffix = "safetensors", ".safetensors"

    def __init__(self, tensor_name: str = "states") -> None:
        self.tensor_name = tensor_name

    def prepare(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().to("cpu", torch.float32).contiguous()

    def encode(self, value: torch.Tensor) -> bytes:
        return save_safetensors({self.tensor_name: value})

    def decode(self, data: bytes) -> torch.Tensor:
        return load_safetensors(data)[self.tensor_name]

    def describe(self, value: torch.Tensor) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}


def _as_json(key: Any) -> Any:
    """``key`` as it reads back from the sidecar (tuples as lists, other objects via ``str``)."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _default_name(key: Any, key_digest: str) -> str:
    return f"{key_digest[:2]}/{key_digest}"


class KeyedStore:
    """Values of ``codec`` on disk under ``root`` by JSON-able key (see the module docstring)."""

    def __init__(self, root: str | Path, codec: Codec, *,
                 name: Callable[[Any, str], str] = _default_name) -> None:
        self.root, self.codec, self.name = Path(root), codec, name

    def paths(self, key: Any) -> tuple[Path, Path]:
        """``(payload_file, sidecar_file)`` of ``key``."""
        stem = self.root / self.name(key, digest(key))
        return stem.with_name(stem.name + self.codec.suffix), stem.with_name(stem.name + SIDECAR_SUFFIX)

    def load(self, key: Any, default: Any = None) -> Any:
        """The stored value of ``key``; ``default`` when absent, of another key or format, or unusable (warns)."""
        payload, sidecar_path = self.paths(key)
        if not sidecar_path.is_file():
            return default
        try:
            sidecar = json.loads(sidecar_path.read_text())
            if sidecar.get("format") != FORMAT_VERSION or sidecar.get("key") != _as_json(key):
                return default
            if file_sha256(payload) != sidecar["sha256"]:
                raise ValueError("checksum mismatch (truncated or altered file)")
            value = self.codec.decode(payload.read_bytes())
            described = self.codec.describe(value)
            recorded = {name: sidecar.get(name) for name in described}
            if described != recorded:
                raise ValueError(f"payload {described} differs from the sidecar's {recorded}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            warnings.warn(f"cache entry {payload} is unusable ({error}); recomputing it", stacklevel=2)
            return default
        return value

    def store(self, key: Any, value: Any) -> Path:
        """Write ``value`` (as `Codec.prepare` gives it) for ``key``: payload first, sidecar last, each atomic."""
        payload, sidecar_path = self.paths(key)
        value = self.codec.prepare(value)
        atomic_write_bytes(payload, self.codec.encode(value))
        atomic_write_json(sidecar_path, {"format": FORMAT_VERSION, "codec": self.codec.name, "key": _as_json(key),
                                         "digest": digest(key), "sha256": file_sha256(payload),
                                         **self.codec.describe(value)}, indent=1)
        return payload

    def get_or_compute(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The stored value of ``key``; on a miss ``compute()`` it, store it and return it as a hit would."""
        value = self.load(key, _MISS)
        if value is _MISS:
            value = self.codec.prepare(compute())
            self.store(key, value)
        return value
