"""Quickstart end to end (`taskscope run` with no config) into a fresh run folder, then a cached rerun.

Usage: PYTHONPATH=src python benchmarks/bench_quickstart.py [RUN_DIR]   (default: a new temporary folder)
Prints the seconds of every stage of the first run, the total, and the rerun's total.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from taskscope.pipeline import run_study


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="taskscope-quickstart-"))
    t0 = time.perf_counter()
    run = run_study(None, run_dir)
    t1 = time.perf_counter()
    for name, info in run.stages.items():
        print(f"{name:>13}: {info['seconds']:7.1f} s {'(cached)' if info['cached'] else ''}")
    run_study(None, run_dir)
    t2 = time.perf_counter()
    print(f"first run: {t1 - t0:.1f} s   rerun (all cached): {t2 - t1:.1f} s   ratio {(t1 - t0) / (t2 - t1):.0f}x")
    print(f"report: {run.report_path}")


if __name__ == "__main__":
    main()
