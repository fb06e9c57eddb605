"""MOSSA: layer-wise CKA between experimental models and task-specialised control models.

For every experimental model ``E`` (pre-trained, instruction-tuned on all tasks, instruction-tuned
with tasks held out), every task ``t`` and every layer ``l``, :func:`mossa_table` compares the
last-token states ``E_l(x_1..x_n)`` with the control model's ``C_t,l(x_1..x_n)`` on the *same*
``n`` inputs of ``t``.  Order of operations per (task, kernel):

1. check both stacks are ``(L+1, n, d)`` with the same ``n`` (row i is input i on both sides);
2. per task and kernel, all experimental models at once against the task's control (its Gram
   matrices once): ``cka_grid([E_t, ...], [C_t])`` batched over layers -> ``(L+1,)`` per model;
3. interval (``n_bootstrap > 0``): :func:`taskscope.similarity.bootstrap_grid` (the interval of
   :func:`~taskscope.similarity.bootstrap_ci` for every model: ``interval="percentile"`` or ``"normal"``,
   built from the debiased statistic, for the population CKA; Gram matrices once, resamples as row
   counts on them, the RBF bandwidth the full sample's; the control's resampled sums shared by the
   models), seeded by ``(seed, task)`` so every experimental model sees the *same* resampled inputs; the curve of (2) is then the
   bootstrap's own estimate (the same CKA on the same Gram matrices);
4. sensitivity (``top_k > 0``): :func:`taskscope.similarity.cka_without_top_directions`: the share of
   each side's variance on its top ``top_k`` principal directions and CKA with them removed.

:func:`mossa_differences` gives each experimental model's CKA minus a baseline model's, with a
paired interval and a paired permutation p-value (:func:`taskscope.similarity.paired_difference`,
the same ``(seed, task)`` resamples).  :func:`cluster_summary` and :func:`layer_summary` are plain
pandas group-bys of the tidy table, so notebooks can redo them.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from taskscope.similarity import (
    SimilarityWarning,
    bootstrap_grid,
    cka_grid,
    cka_without_top_directions,
    paired_difference,
)

MOSSA_COLUMNS = [
    "experimental_model", "task", "cluster", "heldout", "layer", "kernel", "cka", "ci_low", "ci_high",
    "top_k", "topk_var_share_exp", "topk_var_share_ctrl", "cka_without_topk",
]
DIFFERENCE_COLUMNS = [
    "experimental_model", "baseline", "task", "cluster", "layer", "kernel", "cka_diff", "ci_low", "ci_high", "p_value",
]


def _task_seed(seed: int, task: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{task}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _quiet(fn, *args, **kwargs):
    """Call a similarity function with its per-call SimilarityWarnings (and numpy's all-NaN warnings) silenced:
    undefined values stay NaN and :func:`mossa_table` warns once for all of them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimilarityWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _task_columns(states: list[torch.Tensor], control: torch.Tensor, kernel: str, debiased: bool, n_bootstrap: int,
                  interval: str, confidence: float, seed: int, top_k: int,
                  kernel_args: dict) -> list[tuple[np.ndarray, ...]]:
    """Every experimental model's ``(cka, ci_low, ci_high, cka_without_topk, share_exp, share_ctrl)`` curves for one
    task and kernel.  The control's Gram matrices, and with ``n_bootstrap > 0`` its resampled sums, are computed
    once for all models (:func:`~taskscope.similarity.cka_grid`, :func:`~taskscope.similarity.bootstrap_grid`;
    with intervals the curve is the bootstrap's estimate, the same CKA on the same Gram matrices)."""
    if n_bootstrap > 0:
        boots = _quiet(bootstrap_grid, states, control, kernel, debiased, n_resamples=n_bootstrap,
                       interval=interval, confidence=confidence, seed=seed, **kernel_args)
        curves = [np.atleast_1d(np.asarray(b.estimate, dtype=np.float64)) for b in boots]
        intervals = [(np.where(np.isnan(c), np.nan, b.low), np.where(np.isnan(c), np.nan, b.high))
                     for c, b in zip(curves, boots)]
    else:
        curves = list(_quiet(cka_grid, states, [control], kernel, debiased, **kernel_args)[:, 0])
        intervals = [(np.full_like(c, np.nan), np.full_like(c, np.nan)) for c in curves]
    out = []
    for x, curve, (low, high) in zip(states, curves, intervals):
        nan = np.full_like(curve, np.nan)
        without = share_exp = share_ctrl = nan
        if top_k > 0:
            without, share_exp, share_ctrl = _quiet(cka_without_top_directions, x, control, top_k, kernel, debiased,
                                                    **kernel_args)
        out.append((curve, low, high, without, share_exp, share_ctrl))
    return out


def _check_pair(model: str, task: str, states: torch.Tensor, controls: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if task not in controls:
        raise KeyError(f"no control model states for task {task!r} (experimental model {model!r})")
    control = controls[task]
    if states.shape[:2] != control.shape[:2]:
        raise ValueError(
            f"task {task!r}: experimental model {model!r} states {tuple(states.shape)} and control states "
            f"{tuple(control.shape)} differ in layers or inputs"
        )
    return control


def mossa_table(
    experimental: Mapping[str, Mapping[str, torch.Tensor]],
    controls: Mapping[str, torch.Tensor],
    clusters: Mapping[str, str],
    *,
    kernels: Sequence[str] = ("linear",),
    debiased: bool = False,
    n_bootstrap: int = 0,
    interval: str = "percentile",
    confidence: float = 0.95,
    seed: int = 0,
    heldout: Mapping[str, Collection[str]] | None = None,
    kernel_args: Mapping[str, Mapping] | None = None,
    top_k: int = 3,
) -> pd.DataFrame:
    """Tidy MOSSA table, one row per (experimental model, task, layer, kernel); columns :data:`MOSSA_COLUMNS`.

    ``experimental[model][task]`` and ``controls[task]`` are ``(L+1, n, d)`` stacks of the same
    inputs; ``clusters[task]`` names the task's cluster; ``heldout[model]`` lists the tasks that
    model never saw in training (column ``heldout``).  ``kernel_args[kernel]`` holds extra kernel
    parameters (e.g. ``{"rbf": {"sigma_scale": 1.0}}``).  Without bootstrap (``n_bootstrap=0``) ``ci_low``/``ci_high``
    are NaN; with it they bound the population CKA (docs/similarity.md), by the ``interval`` method of
    :func:`~taskscope.similarity.bootstrap_ci` (``"normal"`` draws no resamples).  ``top_k`` (0: off, columns
    NaN) sets the sensitivity columns ``topk_var_share_exp``, ``topk_var_share_ctrl`` (share of each
    side's variance on its top ``top_k`` principal directions) and ``cka_without_topk`` (CKA, same
    kernel and estimator, with those directions removed from both sides).  Where CKA is undefined
    (constant states on a side, e.g. the embedding layer under last-token pooling when every prompt
    ends in the same token) ``cka`` and its interval are NaN.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    heldout = {m: set(t) for m, t in (heldout or {}).items()}
    kernel_args = kernel_args or {}
    for model, by_task in experimental.items():
        for task, states in by_task.items():
            _check_pair(model, task, states, controls)
    tasks = list(dict.fromkeys(task for by_task in experimental.values() for task in by_task))
    columns: dict[tuple[str, str, str], tuple[np.ndarray, ...]] = {}
    for task in tasks:
        models = [m for m in experimental if task in experimental[m]]
        for kernel in kernels:
            for model, values in zip(models, _task_columns([experimental[m][task] for m in models], controls[task],
                                                           kernel, debiased, n_bootstrap, interval, confidence,
                                                           _task_seed(seed, task), top_k,
                                                           dict(kernel_args.get(kernel, {})))):
                columns[(model, task, kernel)] = values
    rows = []
    for model, by_task in experimental.items():
        for task in by_task:
            for kernel in kernels:
                curve, low, high, without, share_exp, share_ctrl = columns[(model, task, kernel)]
                for layer, value in enumerate(curve):
                    rows.append((model, task, clusters.get(task, "uncategorised"), task in heldout.get(model, ()),
                                 layer, kernel, float(value), float(low[layer]), float(high[layer]),
                                 top_k, float(share_exp[layer]), float(share_ctrl[layer]), float(without[layer])))
    table = pd.DataFrame(rows, columns=MOSSA_COLUMNS)
    undefined = table[table["cka"].isna()]
    if len(undefined):
        layers = sorted(set(undefined["layer"]))
        why = (" (expected with last-token pooling when every prompt ends in the same token: layer 0 is that "
               "token's embedding)") if layers == [0] else ""
        warnings.warn(f"CKA undefined (constant states) for {len(undefined)} of {len(table)} rows, at layers "
                      f"{layers}; they are NaN in the table{why}", SimilarityWarning, stacklevel=2)
    return table


def mossa_differences(
    experimental: Mapping[str, Mapping[str, torch.Tensor]],
    controls: Mapping[str, torch.Tensor],
    clusters: Mapping[str, str],
    baseline: str,
    *,
    kernels: Sequence[str] = ("linear",),
    debiased: bool = False,
    n_bootstrap: int = 0,
    n_permutations: int = 0,
    interval: str = "percentile",
    confidence: float = 0.95,
    seed: int = 0,
    kernel_args: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Per (other model, task, layer, kernel): ``cka_diff = CKA(model, C_t) - CKA(baseline, C_t)`` with a paired
    interval (``n_bootstrap > 0``) and a two-sided paired permutation ``p_value`` (``n_permutations > 0``);
    columns :data:`DIFFERENCE_COLUMNS`.

    Both models are compared with the same control on the same resampled inputs (seeded by
    ``(seed, task)``, the resamples of :func:`mossa_table`).  The permutation test swaps the two
    models' states input by input, so it needs both at one width; otherwise ``p_value`` is NaN
    (with a warning).  A task the baseline has no states for is skipped.
    """
    if baseline not in experimental:
        raise KeyError(f"baseline model {baseline!r} not among the experimental models {sorted(experimental)}")
    kernel_args = kernel_args or {}
    rows = []
    for model, by_task in experimental.items():
        if model == baseline:
            continue
        for task, states in by_task.items():
            if task not in experimental[baseline]:
                continue
            control = _check_pair(model, task, states, controls)
            base = experimental[baseline][task]
            _check_pair(baseline, task, base, controls)
            permutations = n_permutations
            if permutations and states.shape != base.shape:
                warnings.warn(f"task {task!r}: {model!r} and {baseline!r} states differ in shape "
                              f"({tuple(states.shape)} vs {tuple(base.shape)}); no permutation p-value",
                              SimilarityWarning, stacklevel=2)
                permutations = 0
            for kernel in kernels:
                args = dict(kernel_args.get(kernel, {}))
                result = _quiet(paired_difference, states, base, control, kernel, debiased, n_resamples=n_bootstrap,
                                n_permutations=permutations, interval=interval if n_bootstrap > 0 else "percentile",
                                confidence=confidence, seed=_task_seed(seed, task), **args)
                diff, low, high, p = (np.atleast_1d(np.asarray(v, dtype=np.float64))
                                      for v in (result.estimate, result.low, result.high, result.p_value))
                for layer in range(diff.shape[0]):
                    rows.append((model, baseline, task, clusters.get(task, "uncategorised"), layer, kernel,
                                 float(diff[layer]), float(low[layer]), float(high[layer]), float(p[layer])))
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def layer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (model, kernel, layer): mean, std (ddof 0), quartiles, min, max of CKA across tasks."""
    grouped = table.groupby(["experimental_model", "kernel", "layer"], sort=True)["cka"]
    out = grouped.agg(mean="mean", std=lambda s: float(np.std(s, ddof=0)), min="min", max="max",
                      q25=lambda s: s.quantile(0.25), median="median", q75=lambda s: s.quantile(0.75),
                      n_tasks="count")
    return out.reset_index()


def cluster_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (model, kernel, cluster, layer): mean and std (ddof 0) of CKA over the cluster's tasks."""
    grouped = table.groupby(["experimental_model", "kernel", "cluster", "layer"], sort=True)["cka"]
    out = grouped.agg(mean="mean", std=lambda s: float(np.std(s, ddof=0)), n_tasks="count")
    return out.reset_index()
