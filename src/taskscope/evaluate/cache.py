"""`EvalCache`: evaluation results as JSON files keyed by what determines them.

The key is a JSON-ready dict (model fingerprint, task, the digest of the examples, the evaluation settings);
its `taskscope.common.hashing.digest` names the file ``root/{digest[:2]}/{digest}.json``, which holds
``{"key": ..., "value": ...}``.  `get_or_compute` returns the stored value when the file exists and its key
equals the requested one; otherwise it computes the value, writes it to a temporary file in the same folder
and moves it into place with ``os.replace`` (:mod:`taskscope.common.files`: a killed run never leaves a
half-written entry).
An unreadable entry is recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_text
from taskscope.common.hashing import digest
from taskscope.train.data import ExampleLike


def hash_examples(examples: Sequence[ExampleLike]) -> str:
    """`digest` of every example's task, instance id, prompt and targets, in order."""
    return digest([[ex.task, ex.instance_id, ex.prompt, list(ex.targets)] for ex in examples])


class EvalCache:
    """JSON results under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: Mapping[str, Any]) -> Path:
        name = digest(key)
        return self.root / name[:2] / f"{name}.json"

    def load(self, key: Mapping[str, Any]) -> Any | None:
        """The stored value for ``key``, or None when absent or unreadable."""
        path = self.path(key)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        canonical = json.loads(json.dumps(key, sort_keys=True))
        return record["value"] if record.get("key") == canonical else None

    def store(self, key: Mapping[str, Any], value: Any) -> None:
        path = self.path(key)
        atomic_write_text(path, json.dumps({"key": key, "value": value}, sort_keys=True, ensure_ascii=False))

    def get_or_compute(self, key: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, computing and storing it (JSON-ready) on a miss."""
        value = self.load(key)
        if value is None:
            value = compute()
            self.store(key, value)
            value = json.loads(json.dumps(value))
        return value
