"""`common/allocator.tune_allocator`: large blocks come from the heap after it, and a skip is recorded with its reason."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

from taskscope.common import allocator
from taskscope.common.fastpaths import collect_fast_paths

# A fresh interpreter mallocs an 8 MiB block and reports whether glibc served it with its own memory map
# (mallinfo2().hblks counts such blocks); TUNE decides whether tune_allocator() runs first.
PROBE = textwrap.dedent("""
    import ctypes, sys
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    if sys.argv[1] == "1":
        from taskscope.common.allocator import tune_allocator
        assert tune_allocator()
    before = libc.mallinfo2().hblks
    block = libc.malloc(8 << 20)
    print(libc.mallinfo2().hblks - before)
""")


def _libc_has(symbol: str) -> bool:
    """The process's C library (as ``tune_allocator`` finds it) exports ``symbol``."""
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), symbol)
    except OSError:
        return False


@pytest.mark.skipif(not _libc_has("mallinfo2"), reason="needs glibc >= 2.33 (mallinfo2) to observe the allocator")
def test_large_blocks_come_from_the_heap_once_tuned():
    mapped = {tune: int(subprocess.run([sys.executable, "-c", PROBE, tune], capture_output=True, text=True,
                                       check=True).stdout) for tune in ("0", "1")}
    assert mapped == {"0": 1, "1": 0}


def test_tuning_is_recorded_as_a_fast_path(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    with collect_fast_paths() as record:
        applied = allocator.tune_allocator()
        assert allocator.tune_allocator() is applied          # idempotent, decided once
    assert record["allocator.heap_reuse"]["used"] == int(applied)
    assert applied is _libc_has("gnu_get_libc_version")       # glibc: applied; elsewhere: skipped


def test_a_skip_names_its_reason(monkeypatch, caplog):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "_mallopt", lambda: (None, "no glibc mallopt in libc.test"))
    with collect_fast_paths() as record:
        assert allocator.tune_allocator() is False
    assert record["allocator.heap_reuse"] == {"used": 0, "skipped": {"no glibc mallopt in libc.test": 1}}
    assert "no glibc mallopt in libc.test" in caplog.text
