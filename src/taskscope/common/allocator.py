"""Keep large temporary tensors on the heap instead of fresh memory maps (glibc only).

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at start, raised only when such a
block is freed) with a new memory map and unmaps it on ``free``, so every large temporary touches
fresh pages: one page fault per 4 KiB on first write.  Similarity with intervals creates many
``positions x n x n`` temporaries in a row (a 200 x 200 float64 stack of 18 layers is 5.8 MB); with
their pages faulted in anew the resampling engine ran ~1.5x slower (``benchmarks/bench_cka.py``).

:func:`tune_allocator`, in this order:

1. find glibc's ``mallopt`` (``ctypes``); none (musl, macOS, Windows): note the fast path as skipped;
2. ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` (glibc's largest): blocks below it come from the heap;
3. ``mallopt(M_TRIM_THRESHOLD, 1 GiB)``: freed heap memory is kept for reuse instead of being handed
   back to the system after every large free;
4. note the fast path ``allocator.heap_reuse`` as used, or skipped with the reason.

Process-wide and irreversible, so the library never calls it on import: the ``taskscope`` command and
the benchmarks do; a script using the library can call it once at start.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

from taskscope.common.fastpaths import note_fast_path

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def _mallopt() -> tuple[Callable[[int, int], int] | None, str]:
    """The C library's ``mallopt`` and ``""``, or ``None`` and why there is none."""
    if not sys.platform.startswith("linux"):
        return None, f"not Linux ({sys.platform})"
    try:
        return ctypes.CDLL(None).mallopt, ""   # the process's own C library: no library search at start-up
    except (OSError, AttributeError) as err:
        return None, f"no mallopt in this process's C library ({err})"


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (module docstring); ``True`` when applied.
    Idempotent: later calls return the first call's answer."""
    global _applied
    if _applied is None:
        mallopt, reason = _mallopt()
        if mallopt is not None:
            applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            reason = "" if applied else "mallopt refused the thresholds"
        else:
            applied = False
        _applied = applied
        note_fast_path("allocator.heap_reuse", applied, reason)
    return _applied
