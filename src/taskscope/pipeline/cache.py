"""Content-addressed stage folders and done-markers.

A stage's folder is ``run_dir/stages/{stage}-{key[:12]}`` where ``key`` is :func:`stable_hash` of
the stage's config slice, its code version and its upstream stages' keys.  Finished work is marked
by a ``_done.json`` file written last (atomically), so

* a folder without its marker is unfinished work (re-entered on resume; items inside it that carry
  their own marker are kept, see :func:`item_done`);
* a changed config slice gives a new key, hence a new folder: only that stage and its dependants rerun.

All writes are atomic (:mod:`taskscope.common.files`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_json

DONE_MARKER = "_done.json"


def stable_hash(obj: Any) -> str:
    """sha256 hex digest of ``obj`` as canonical JSON (keys sorted; paths and other objects via ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE_MARKER).is_file()


def read_marker(folder: Path) -> dict:
    return json.loads((Path(folder) / DONE_MARKER).read_text())


def mark_done(folder: Path, **meta: Any) -> None:
    atomic_write_json(Path(folder) / DONE_MARKER, {"finished_at": time.time(), **meta})


def item_done(folder: Path) -> bool:
    """An item (one control model, one task's states) is done when its folder carries the marker."""
    return is_done(folder)
