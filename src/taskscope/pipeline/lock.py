"""An exclusive lock on a run folder while a run (or ``taskscope clean``) works in it.

``with run_lock(run_dir, wait=0):`` takes an exclusive lock on ``run_dir/.run.lock``:

1. the lock is tried without blocking; while another process holds it, retry every 0.2 s until ``wait``
   seconds have passed, then raise :class:`RunLockedError` naming the holder (pid, host, start time);
2. once held, a holder record left in the file by a process that did not release it (killed: the
   operating system dropped its lock, the record stayed) is reported as a stale lock and replaced;
3. the file now names this process; on exit the record is emptied and the lock released.

The lock file is never deleted (deleting it would let a waiting process lock an orphaned inode while a
third one locks a new file).  POSIX ``fcntl.flock`` (on NFS it relies on the server's lock support); on
Windows ``msvcrt.locking`` of the first byte.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".run.lock"
logger = logging.getLogger("taskscope.pipeline")


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _try_lock(handle) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # BlockingIOError (POSIX) or PermissionError (Windows): held elsewhere
        return False


def _unlock(handle) -> None:
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


def _holder(handle) -> dict:
    handle.seek(0)
    text = handle.read().strip()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"unreadable": text[:200]}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} (started {started}: {holder.get('command', '?')})"


@contextmanager
def run_lock(run_dir: str | Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the exclusive lock of ``run_dir`` for the block; see the module docstring."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        deadline = time.monotonic() + wait
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                raise RunLockedError(
                    f"run folder {run_dir} is in use by {_describe(_holder(handle))}; wait for that run to "
                    f"finish (or stop it) and try again, or use another run folder")
            time.sleep(0.2)
        stale = _holder(handle)
        if stale:
            logger.warning("run folder %s: stale lock of %s (that run ended without releasing it; killed?); "
                           "taking over", run_dir, _describe(stale))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(),
                                 "command": " ".join(sys.argv)[:300]}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            _unlock(handle)
    finally:
        handle.close()
