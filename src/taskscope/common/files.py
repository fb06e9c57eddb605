"""Atomic writes: a killed run leaves either the old file (or none) or the complete new one.

Order of operations everywhere: write to a temporary sibling in the target's folder (same file system),
give it the permissions the user's umask gives a new file (``0o666 & ~umask``; folders ``0o777 & ~umask``;
``mkstemp`` alone would leave ``0o600``), flush and ``fsync`` it, then ``os.replace`` it onto the target; on
any error the temporary is removed.  Temporaries are named ``.{name}.*.tmp`` (`is_temporary` knows them), so
a run killed mid-write leaves only names that `remove_temporaries` clears and publishing skips.

`file_sha256` is the one file digest of the project (done-markers, cache entries of `common.store`, checkpoint
lists, data hashes).
"""

from __future__ import annotations

import json
import os
import shutil
import hashlib
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


_UMASK_LOCK = threading.Lock()
_CHUNK = 1 << 20


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _chmod_default(path: str | Path, *, folder: bool) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is an unfinished write: ``.x.*.tmp`` (atomic writers), ``.tmp-*`` (checkpoints)."""
    return name.startswith(".") and (name.endswith(".tmp") or name.startswith(".tmp-"))


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete every temporary (see `is_temporary`) under ``folder``; returns what was removed."""
    removed: list[Path] = []
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if is_temporary(d)]:
            shutil.rmtree(Path(root) / name, ignore_errors=True)
            removed.append(Path(root) / name)
            dirs.remove(name)
        for name in files:
            if is_temporary(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed.append(Path(root) / name)
    return removed


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; when the block ends normally it replaces ``path``.

    For writers that want a file name (``fig.savefig``, ``shutil.copy2``) rather than bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    _chmod_default(temporary, folder=False)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary sibling, ``fsync``, ``os.replace``)."""
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON (keys sorted; paths and other objects via ``str``) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str, ensure_ascii=False))


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; when the block ends normally it replaces ``path`` (an old one is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _chmod_default(temporary, folder=True)
    try:
        yield temporary
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
