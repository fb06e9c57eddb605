"""`digest`: the one content hash of JSON-able data (cache keys, stage keys, hashes of examples and prompts).

``digest(obj)`` is the sha256 hex digest of ``obj``'s canonical JSON, encoded as UTF-8:

* ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)``, so
* dict keys are sorted at every level (insertion order never matters), there is no whitespace, every
  non-ASCII character is a ``\\uXXXX`` escape, and objects JSON cannot encode (paths, ...) go through
  ``str``; tuples encode as lists.

So equal data gives equal digests in any process, and any change of a value, a list's order or its length
changes the digest.  File contents are hashed by `taskscope.common.files.file_sha256`; seeds for random
generators come from `taskscope.tasks.splits.seed_from`, not from here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(obj: Any) -> str:
    """sha256 hex digest of ``obj``'s canonical JSON (see the module docstring)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
