"""`EvalCache`: evaluation results as JSON, keyed by what determines them (a `common.store.KeyedStore`).

The key is a JSON-ready dict (model fingerprint, task, the digest of the examples, the evaluation settings);
its `taskscope.common.hashing.digest` names the entry ``root/{digest[:2]}/{digest}.json`` (the value) and
``.meta.json`` beside it (the key and the value file's sha256).  `get_or_compute` returns the stored value
when its key matches and the file verifies; otherwise it computes the value and writes it atomically (value
first, sidecar last: a killed run never leaves a half-written entry).  A damaged entry is recomputed with a
warning; an entry written before the store (format 1, no sidecar) is a miss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskscope.common.hashing import digest
from taskscope.common.store import JsonCodec, KeyedStore
from taskscope.train.data import ExampleLike


def hash_examples(examples: Sequence[ExampleLike]) -> str:
    """`digest` of every example's task, instance id, prompt and targets, in order."""
    return digest([[ex.task, ex.instance_id, ex.prompt, list(ex.targets)] for ex in examples])


class EvalCache(KeyedStore):
    """JSON results under ``root`` keyed by a JSON-ready dict (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root, JsonCodec())

    def path(self, key: Mapping[str, Any]) -> Path:
        """The value file of ``key``."""
        return self.paths(key)[0]
