"""Content-addressed stage folders, atomic writes and done-markers.

A stage's folder is ``run_dir/stages/{stage}-{key[:12]}`` where ``key`` is :func:`stable_hash` of
the stage's config slice, its code version and its upstream stages' keys.  Finished work is marked
by a ``_done.json`` file written last (atomically), so

* a folder without its marker is unfinished work (re-entered on resume; items inside it that carry
  their own marker are kept, see :func:`item_done`);
* a changed config slice gives a new key, hence a new folder: only that stage and its dependants rerun.

All writes go to a temporary sibling first and are moved into place with :func:`os.replace`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DONE_MARKER = "_done.json"


def stable_hash(obj: Any) -> str:
    """sha256 hex digest of ``obj`` as canonical JSON (keys sorted; paths and other objects via ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``path`` (an old ``path`` is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE_MARKER).is_file()


def read_marker(folder: Path) -> dict:
    return json.loads((Path(folder) / DONE_MARKER).read_text())


def mark_done(folder: Path, **meta: Any) -> None:
    atomic_write_json(Path(folder) / DONE_MARKER, {"finished_at": time.time(), **meta})


def item_done(folder: Path) -> bool:
    """An item (one control model, one task's states) is done when its folder carries the marker."""
    return is_done(folder)
