"""MOSSA bootstrap: the similarity bootstrap (Gram matrices once, resamples as row counts on them) vs resampling the (n, d) states.

Usage: PYTHONPATH=src python benchmarks/bench_mossa_bootstrap.py [--layers 19 --n 64 --d 640 --resamples 200]
Prints both timings, the ratio and the largest difference between the two sets of resampled curves
(the baseline recomputes every resample's Gram matrices from the states, as a per-resample loop would).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from taskscope.similarity import bootstrap_ci, cka, resample_indices


def naive_bootstrap(x, y, n_bootstrap, seed, chunk=16):
    indices = torch.from_numpy(resample_indices(x.shape[1], n_bootstrap, seed))
    out = []
    for start in range(0, n_bootstrap, chunk):
        idx = indices[start:start + chunk]
        out.append(np.asarray(cka(x[:, idx].transpose(0, 1), y[:, idx].transpose(0, 1), kernel="linear",
                                  space="gram")))
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
    ours = bootstrap_ci(x, y, n_resamples=args.resamples, seed=1).distribution
    t2 = time.perf_counter()
    print(f"grid: {args.layers} layers x n {args.n} x d {args.d}, {args.resamples} resamples (one task, linear CKA)")
    print(f"naive resampling of (n, d) states:          {t1 - t0:.3f} s")
    print(f"similarity.bootstrap_ci (row counts on the Grams, ours): {t2 - t1:.3f} s (includes the jackknife)")
    print(f"speed-up: {(t1 - t0) / (t2 - t1):.1f}x   max |difference|: {np.abs(base - ours).max():.2e}")


if __name__ == "__main__":
    main()
