"""A record of which fast paths ran and which were skipped, and why: no silent fallbacks.

Code with a fast path calls ``note_fast_path(name, used, reason)`` each time it decides.  Order of
operations:

1. the decision is counted in the process-wide record under ``name`` (``used`` count, or the skip
   count per ``reason``);
2. a skip is logged once per ``(name, reason)`` as a WARNING on ``taskscope.fastpaths`` naming the
   path and the reason, so a run's log always says what it did not speed up;
3. `collect_fast_paths()` returns the decisions made inside a ``with`` block (the stage engine wraps
   every stage and every item job in one and stores the result, so the run manifest lists them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("taskscope.fastpaths")

FastPathRecord = dict[str, dict[str, Any]]  # name -> {"used": n, "skipped": {reason: n}}

_collectors: list[FastPathRecord] = []
_warned: set[tuple[str, str]] = set()


def _count(record: FastPathRecord, name: str, used: bool, reason: str) -> None:
    entry = record.setdefault(name, {"used": 0, "skipped": {}})
    if used:
        entry["used"] += 1
    else:
        entry["skipped"][reason] = entry["skipped"].get(reason, 0) + 1


def note_fast_path(name: str, used: bool, reason: str = "") -> None:
    """Count one decision about fast path ``name``; a skip (``used=False``) is logged once per reason."""
    for record in _collectors:
        _count(record, name, used, reason)
    if not used and (name, reason) not in _warned:
        _warned.add((name, reason))
        logger.warning("fast path %r not taken: %s", name, reason or "no reason given")


@contextmanager
def collect_fast_paths(*, isolated: bool = False) -> Iterator[FastPathRecord]:
    """The decisions noted while the block runs (nested blocks each see their own and their children's).

    ``isolated=True`` hides the block's decisions from the enclosing blocks (an item job whose record is
    stored on its own, so its stage does not count it twice).
    """
    record: FastPathRecord = {}
    outer = _collectors[:] if isolated else []
    if isolated:
        _collectors.clear()
    _collectors.append(record)
    try:
        yield record
    finally:
        _collectors.remove(record)
        _collectors.extend(outer)


def merge_fast_paths(records: list[FastPathRecord]) -> FastPathRecord:
    """Sum several records (e.g. a stage's items) into one."""
    merged: FastPathRecord = {}
    for record in records:
        for name, entry in record.items():
            target = merged.setdefault(name, {"used": 0, "skipped": {}})
            target["used"] += entry.get("used", 0)
            for reason, count in entry.get("skipped", {}).items():
                target["skipped"][reason] = target["skipped"].get(reason, 0) + count
    return merged
