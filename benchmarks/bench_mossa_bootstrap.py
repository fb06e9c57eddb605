"""MOSSA bootstrap: gathered Gram matrices (ours, linear kernel) vs resampling the full (n, d) states, same process.

Usage: PYTHONPATH=src python benchmarks/bench_mossa_bootstrap.py [--layers 19 --n 64 --d 640 --resamples 200]
Prints both timings, the ratio and the largest difference between the two sets of curves.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from taskscope.analysis.mossa import bootstrap_curves
from taskscope.similarity import cka


def naive_bootstrap(x, y, n_bootstrap, seed, chunk=16):
    indices = torch.from_numpy(np.random.default_rng(seed).integers(0, x.shape[1], size=(n_bootstrap, x.shape[1])))
    out = []
    for start in range(0, n_bootstrap, chunk):
        idx = indices[start:start + chunk]
        out.append(np.asarray(cka(x[:, idx].transpose(0, 1), y[:, idx].transpose(0, 1), kernel="linear")))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=19)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--d", type=int, default=640)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.layers, args.n, args.d)
    y = x + 0.5 * torch.randn(args.layers, args.n, args.d)
    t0 = time.perf_counter()
    base = naive_bootstrap(x, y, args.resamples, seed=1)
    t1 = time.perf_counter()
    ours = bootstrap_curves(x, y, kernel="linear", debiased=False, n_bootstrap=args.resamples, seed=1)
    t2 = time.perf_counter()
    print(f"grid: {args.layers} layers x n {args.n} x d {args.d}, {args.resamples} resamples (one task, linear CKA)")
    print(f"naive resampling of (n, d) states: {t1 - t0:.3f} s")
    print(f"gathered Gram matrices (ours):     {t2 - t1:.3f} s")
    print(f"speed-up: {(t1 - t0) / (t2 - t1):.1f}x   max |difference|: {np.abs(base - ours).max():.2e}")


if __name__ == "__main__":
    main()
