"""CKA speed and accuracy: taskscope vs ckatorch, repsim and a plain per-pair implementation.

Prints ratios (not a test).  Two workloads:

(a) MOSSA grid: ``layers x tasks`` positions, ``n x d`` last-token states, ``--models`` experimental
    models each compared with the control model C_t at every (task, layer).  taskscope runs the
    whole grid with :func:`taskscope.similarity.cka_grid` (each Gram once); the peers run per pair on
    the first ``--peer-tasks`` tasks (they are per-pair APIs; their per-pair time scales linearly).
(b) one pair at ``--pair-n x --pair-d``.

The MOSSA goal (issue 11) is the grid *with intervals*: on the peer subset, per task,
``bootstrap_grid(..., interval="normal")`` (estimate and jackknife, no resamples: the bias-corrected
jackknife normal interval, whose simulated coverage equals the percentile interval's, docs/similarity.md) and
``bootstrap_grid`` of all models against the task's control (estimate, jackknife and ``--resamples``
resamples seeded per task, as ``analysis/mossa.py`` calls it; the control's Gram matrix and resampled
sums once per task) against ckatorch's plain CKA per pair.  ``bootstrap_ci`` per model and task (the
control's part recomputed for every model) is timed alongside.

Methods are interleaved inside each repeat (rotating order) so that load from other processes on a
shared machine hits all of them alike; the best of ``--repeats`` per method is reported.  Accuracy:
max |value - plain float64 numpy| over the peer subset.

    python benchmarks/bench_cka.py            # full sizes
    python benchmarks/bench_cka.py --quick    # small smoke run
    pip install ckatorch repsim               # the peers (the "bench" extra); missing ones are skipped
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from taskscope.common.allocator import tune_allocator
from taskscope.similarity import bootstrap_ci, bootstrap_grid, cka, cka_grid


# ------------------------------------------------------------------ plain float64 reference
def plain_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019) linear CKA, per pair, float64: centred Gram matrices and their cosine."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    h = np.eye(x.shape[0]) - 1.0 / x.shape[0]
    k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def peers() -> dict[str, Callable[[torch.Tensor, torch.Tensor], float]]:
    found: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
        "plain-numpy-f64": lambda x, y: plain_cka(x.numpy(), y.numpy()),
    }
    try:
        from ckatorch.core import cka_base

        found["ckatorch"] = lambda x, y: float(cka_base(x, y, kernel="linear"))
    except ImportError as err:
        print(f"ckatorch unavailable ({err}); skipped")
    try:
        import repsim

        found["repsim"] = lambda x, y: float(repsim.cka([x.numpy(), y.numpy()], kernel_type="linear")[0, 1])
    except ImportError as err:
        print(f"repsim unavailable ({err}); skipped")
    return found


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ------------------------------------------------------------------ workloads
def grid_workload(args: argparse.Namespace) -> None:
    gen = torch.Generator().manual_seed(0)
    shape = (args.tasks, args.layers, args.n, args.d)
    control = torch.randn(shape, generator=gen)
    models = [0.6 * control + torch.randn(shape, generator=gen) for _ in range(args.models)]
    pairs_full = args.models * args.tasks * args.layers
    sub = slice(0, args.peer_tasks)
    pairs_sub = args.models * args.peer_tasks * args.layers
    print(f"\n(a) MOSSA grid: {args.layers} layers x {args.tasks} tasks x n={args.n} x d={args.d}, "
          f"{args.models} models vs control = {pairs_full} pairs; peers on {args.peer_tasks} tasks = {pairs_sub} pairs")

    def per_pair(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> Callable[[], np.ndarray]:
        return lambda: np.array([[[fn(m[t, l], control[t, l]) for l in range(args.layers)]
                                  for t in range(args.peer_tasks)] for m in models])

    methods: dict[str, tuple[Callable[[], object], int]] = {
        "taskscope grid (full)": (lambda: cka_grid(models, [control])[:, 0], pairs_full),
        f"taskscope grid + {args.resamples}-resample CI": (
            lambda: np.stack([[b.estimate for b in bootstrap_grid([m[t] for m in models], control[t],
                                                                  n_resamples=args.resamples, seed=t)]
                              for t in range(args.peer_tasks)], axis=1), pairs_sub),
        "taskscope grid + normal CI": (
            lambda: np.stack([[b.estimate for b in bootstrap_grid([m[t] for m in models], control[t],
                                                                  interval="normal")]
                              for t in range(args.peer_tasks)], axis=1), pairs_sub),
        "  same, bootstrap_ci per model": (
            lambda: np.stack([[bootstrap_ci(m[t], control[t], n_resamples=args.resamples, seed=t).estimate
                               for t in range(args.peer_tasks)] for m in models]), pairs_sub),
        "taskscope grid (subset)": (lambda: cka_grid([m[sub] for m in models], [control[sub]])[:, 0], pairs_sub),
        "taskscope grid f64 (subset)": (lambda: cka_grid([m[sub] for m in models], [control[sub]],
                                                          precision="float64")[:, 0], pairs_sub),
        "taskscope per pair (subset)": (per_pair(cka), pairs_sub),
    }
    methods.update({name: (per_pair(fn), pairs_sub) for name, fn in peers().items()})
    best, outputs = {name: np.inf for name in methods}, {}
    names = list(methods)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            fn, pairs = methods[name]
            seconds, out = timed(fn)
            best[name] = min(best[name], seconds / pairs)
            outputs[name] = np.asarray(out)
    reference = outputs["plain-numpy-f64"]
    packages = [n for n in names if not n.startswith(("taskscope", " ")) and n != "plain-numpy-f64"]
    ours = best["taskscope grid (full)"]
    print(f"{'method':30s} {'ms/pair':>9s} {'x vs ours':>10s} {'max|err| vs f64':>16s}")
    for name in names:
        out = outputs[name]
        out = out[:, :args.peer_tasks] if name == "taskscope grid (full)" else out
        err = float(np.max(np.abs(out - reference)))
        print(f"{name:30s} {1e3 * best[name]:9.3f} {best[name] / ours:10.2f} {err:16.2e}")
    if packages:
        fastest = min(packages, key=lambda n: best[n])
        print(f"speed-up of taskscope grid over the fastest CKA package ({fastest}): {best[fastest] / ours:.2f}x "
              f"(goal >= 3x)")
    if "ckatorch" in best:
        with_ci = best[f"taskscope grid + {args.resamples}-resample CI"]
        print(f"MOSSA grid with intervals (estimate + jackknife + {args.resamples} resamples per pair) vs ckatorch's "
              f"plain CKA: {best['ckatorch'] / with_ci:.2f}x (goal >= 3x)")
        print(f"MOSSA grid with the jackknife normal interval (interval='normal', no resamples) vs ckatorch's plain "
              f"CKA: {best['ckatorch'] / best['taskscope grid + normal CI']:.2f}x (goal >= 3x)")
    print(f"speed-up of taskscope grid over the plain per-pair float64 numpy loop: "
          f"{best['plain-numpy-f64'] / ours:.2f}x")


def pair_workload(args: argparse.Namespace) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.pair_n, args.pair_d, generator=gen) * torch.linspace(0.1, 3, args.pair_d) + 5.0
    y = 0.5 * x[:, torch.randperm(args.pair_d, generator=gen)] + torch.randn(args.pair_n, args.pair_d, generator=gen)
    print(f"\n(b) one pair n={args.pair_n}, d={args.pair_d}")
    methods: dict[str, Callable[[], float]] = {
        "taskscope fast": lambda: cka(x, y),
        "taskscope float64": lambda: cka(x, y, precision="float64"),
        "taskscope fast, bf16 input": lambda: cka(x.bfloat16(), y.bfloat16()),
    }
    methods.update({name: (lambda fn=fn: fn(x, y)) for name, fn in peers().items()})
    best, outputs = {name: np.inf for name in methods}, {}
    names = list(methods)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            seconds, out = timed(methods[name])
            best[name], outputs[name] = min(best[name], seconds), float(out)
    reference = outputs["plain-numpy-f64"]
    bf16_reference = plain_cka(x.bfloat16().double().numpy(), y.bfloat16().double().numpy())
    print(f"{'method':30s} {'ms':>9s} {'x vs ours':>10s} {'|err| vs f64':>14s}")
    for name in names:
        ref = bf16_reference if "bf16" in name else reference
        print(f"{name:30s} {1e3 * best[name]:9.2f} {best[name] / best['taskscope fast']:10.2f} "
              f"{abs(outputs[name] - ref):14.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--d", type=int, default=640)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--peer-tasks", type=int, default=4, help="tasks on which the per-pair peers are timed")
    parser.add_argument("--pair-n", type=int, default=1000)
    parser.add_argument("--pair-d", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the interval variant")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's mmap threshold alone (the taskscope command raises it: common/allocator.py)")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.tasks, args.n, args.d, args.peer_tasks = 4, 4, 64, 96, 2
        args.pair_n, args.pair_d, args.repeats = 200, 512, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.default_allocator else tune_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cuda {'available' if torch.cuda.is_available() else 'not available'} (CPU run), "
          f"heap reuse for large temporaries {'on' if tuned else 'off'} (both sides)")
    grid_workload(args)
    pair_workload(args)


if __name__ == "__main__":
    main()
