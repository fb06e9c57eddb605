"""On-disk cache of extracted hidden states: one safetensors file per key plus a JSON sidecar.

A `taskscope.common.store.KeyedStore` with the `TensorCodec`; layout under ``root``::

    {fingerprint[:16]}/{task}-{digest[:16]}.safetensors   tensor "states", float32, (layers, n, d)
    {fingerprint[:16]}/{task}-{digest[:16]}.meta.json     {"format": 2, "codec": "safetensors", "key": {...},
                                                            "digest": ..., "sha256": <of the .safetensors file>,
                                                            "shape": [...], "dtype": "float32"}

The key (`ActivationKey`) holds the model fingerprint, the task, the prompt format id, the digest of the
exact prompt list (order and boundaries count), the pooling, the layers, the compute dtype, ``max_length`` and
``final_norm``; its ``digest`` is `taskscope.common.hashing.digest` of the key.

`ActivationCache.store` writes the tensor file first and the sidecar last, each atomically; the sidecar
therefore marks a complete entry.  `ActivationCache.load` reads the sidecar, checks that its format and key
equal the requested ones (two keys sharing a 16-character digest prefix share a file name, so the key decides),
checks the tensor file's sha256, shape and dtype, and only then returns it; a missing, truncated or altered
entry is a miss (with a warning when it was corrupt), so `get_or_compute` recomputes and rewrites it instead
of using it.  Entries of format 1 (sidecar ``{stem}.json``) are misses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from taskscope.common.hashing import digest
from taskscope.common.store import KeyedStore, TensorCodec

from .extract import extract_hidden_states, resolve_dtype

TENSOR_NAME = "states"


def hash_prompts(prompts: Sequence[str]) -> str:
    """`digest` of the list of prompts: any change of text, order or count changes it."""
    return digest(list(prompts))


def dtype_name(dtype: str | torch.dtype | None) -> str | None:
    resolved = resolve_dtype(dtype)
    return None if resolved is None else str(resolved).removeprefix("torch.")


@dataclass(frozen=True)
class ActivationKey:
    """What determines a cached tensor; build it with `ActivationKey.for_prompts`."""

    fingerprint: str
    task: str
    prompt_format: str
    prompts_sha256: str
    pooling: str = "last"
    layers: tuple[int, ...] | None = None
    dtype: str | None = None
    max_length: int | None = None
    final_norm: bool = True

    @classmethod
    def for_prompts(
        cls,
        fingerprint: str,
        task: str,
        prompt_format: str,
        prompts: Sequence[str],
        *,
        pooling: str = "last",
        layers: Sequence[int] | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        final_norm: bool = True,
    ) -> ActivationKey:
        return cls(fingerprint=fingerprint, task=task, prompt_format=prompt_format,
                   prompts_sha256=hash_prompts(prompts), pooling=pooling,
                   layers=None if layers is None else tuple(int(i) for i in layers),
                   dtype=dtype_name(dtype), max_length=max_length, final_norm=final_norm)

    def parts(self) -> dict[str, Any]:
        """The key as a JSON-ready dict (layers as a list)."""
        parts = asdict(self)
        parts["layers"] = None if self.layers is None else list(self.layers)
        return parts

    def digest(self) -> str:
        """`taskscope.common.hashing.digest` of `parts`."""
        return digest(self.parts())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80] or "_"


def _entry_name(parts: dict[str, Any], key_digest: str) -> str:
    return f"{_slug(parts['fingerprint'][:16])}/{_slug(parts['task'])}-{key_digest[:16]}"


class ActivationCache:
    """Hidden-state tensors on disk under ``root``, keyed by `ActivationKey` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._store = KeyedStore(self.root, TensorCodec(TENSOR_NAME), name=_entry_name)

    def paths(self, key: ActivationKey) -> tuple[Path, Path]:
        """``(tensor_file, sidecar_file)`` of ``key``."""
        return self._store.paths(key.parts())

    def load(self, key: ActivationKey) -> torch.Tensor | None:
        """The cached tensor of ``key``, or ``None`` when absent, of another key, or corrupt (warns)."""
        return self._store.load(key.parts())

    def store(self, key: ActivationKey, tensor: torch.Tensor) -> Path:
        """Write ``tensor`` (as float32) for ``key`` atomically: tensor file first, sidecar last."""
        return self._store.store(key.parts(), tensor)

    def get_or_compute(self, key: ActivationKey, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached tensor of ``key``; on a miss, ``compute()`` it, store it, and return it as float32."""
        def checked() -> torch.Tensor:
            tensor = compute()
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"compute for task {key.task!r} returned {type(tensor).__name__}, not a tensor")
            return tensor

        return self._store.get_or_compute(key.parts(), checked)


def extract_to_cache(
    cache: ActivationCache,
    model: Any,
    tokenizer: Any,
    prompts_by_task: Mapping[str, Sequence[str]],
    *,
    fingerprint: str,
    prompt_format: str,
    batch_size: int = 16,
    pooling: str = "last",
    layers: Sequence[int] | None = None,
    max_length: int | None = None,
    dtype: str | torch.dtype | None = None,
    final_norm: bool = True,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Hidden states of every task's prompts, one cache entry per task, in ``prompts_by_task`` order.

    Each task is looked up, and on a miss extracted (`extract_hidden_states`) and written before the next
    task starts, so an interrupted run keeps its finished tasks.  The key's dtype is the compute dtype:
    ``dtype`` when given, else the dtype of the model's embedding weights.
    """
    compute_dtype = dtype if dtype is not None else model.get_input_embeddings().weight.dtype
    states = {}
    for task, prompts in prompts_by_task.items():
        key = ActivationKey.for_prompts(fingerprint, task, prompt_format, prompts, pooling=pooling, layers=layers,
                                        dtype=compute_dtype, max_length=max_length, final_norm=final_norm)
        states[task] = cache.get_or_compute(key, lambda prompts=prompts, task=task: extract_hidden_states(
            model, tokenizer, prompts, batch_size=batch_size, pooling=pooling, layers=layers,
            max_length=max_length, dtype=dtype, final_norm=final_norm, progress=progress,
            description=f"extract {task}"))
    return states
