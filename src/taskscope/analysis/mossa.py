"""MOSSA: layer-wise CKA between experimental models and task-specialised control models.

For every experimental model ``E`` (pre-trained, instruction-tuned on all tasks, instruction-tuned
with tasks held out), every task ``t`` and every layer ``l``, :func:`mossa_table` compares the
last-token states ``E_l(x_1..x_n)`` with the control model's ``C_t,l(x_1..x_n)`` on the *same*
``n`` inputs of ``t``.  Order of operations per (task, kernel):

1. check both stacks are ``(L+1, n, d)`` with the same ``n`` (row i is input i on both sides);
2. ``cka(E_t, C_t)`` batched over layers -> ``(L+1,)``;
3. bootstrap (optional): draw ``n_bootstrap`` index vectors of the ``n`` inputs, seeded by
   ``(seed, task)`` so every experimental model sees the *same* resamples (paired intervals and
   paired differences), resample rows of both sides, recompute the CKA curve and take percentile
   intervals.  Fast paths, both exact: for the linear kernel the ``n x n`` Gram matrices are formed
   once and each resample only gathers rows and columns of them (``(X[i]) (X[i])^T = (X X^T)[i][:, i]``)
   before :func:`taskscope.similarity.hsic`; for other kernels each side is first projected onto its
   row space (``X -> U S`` of its thin SVD, ``d -> min(n, d)`` columns), which keeps every row dot
   product and distance, hence every kernel value.

:func:`cluster_summary`, :func:`layer_summary` and :func:`model_differences` aggregate the tidy
table; all three are plain pandas group-bys so notebooks can redo them.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from taskscope.similarity import SimilarityWarning, cka, hsic

MOSSA_COLUMNS = [
    "experimental_model", "task", "cluster", "heldout", "layer", "kernel", "cka", "ci_low", "ci_high",
]


def _task_seed(seed: int, task: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{task}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _row_space(states: torch.Tensor) -> torch.Tensor:
    """``(L, n, d) -> (L, n, min(n, d))`` with identical row dot products (thin SVD, ``U * S``)."""
    if states.shape[-1] <= states.shape[-2]:
        return states
    u, s, _ = torch.linalg.svd(states.double(), full_matrices=False)
    return (u * s.unsqueeze(-2)).to(states.dtype)


def _cka_curve(x: torch.Tensor, y: torch.Tensor, kernel: str, debiased: bool, kernel_args: Mapping) -> np.ndarray:
    """``cka`` as float64 numpy; undefined values stay NaN (:func:`mossa_table` warns once for all of them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimilarityWarning)
        return np.asarray(cka(x, y, kernel=kernel, debiased=debiased, **kernel_args), dtype=np.float64)


def bootstrap_curves(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel: str,
    debiased: bool,
    n_bootstrap: int,
    seed: int,
    chunk: int = 16,
    kernel_args: Mapping | None = None,
) -> np.ndarray:
    """CKA curves on ``n_bootstrap`` row resamples of ``(L, n, d)`` stacks -> ``(n_bootstrap, L)``.

    The resamples come from ``numpy.random.default_rng(seed)``; both sides use the same indices.
    """
    kernel_args = dict(kernel_args or {})
    n = x.shape[1]
    indices = torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n)))
    if kernel == "linear" and not kernel_args:
        return _linear_bootstrap(x, y, indices, debiased, chunk)
    xr, yr = _row_space(x), _row_space(y)
    curves = []
    for start in range(0, n_bootstrap, chunk):
        idx = indices[start:start + chunk]                      # (b, n)
        xb = xr[:, idx].transpose(0, 1)                          # (b, L, n, r)
        yb = yr[:, idx].transpose(0, 1)
        curves.append(_cka_curve(xb, yb, kernel, debiased, kernel_args))
    return np.concatenate(curves, axis=0)


def _linear_bootstrap(x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, debiased: bool,
                      chunk: int) -> np.ndarray:
    """Linear CKA of row resamples from gathered float64 Gram matrices -> ``(n_bootstrap, L)``."""
    # centring first changes no centred Gram, and makes constant states give exactly 0 (CKA NaN, as in cka())
    x, y = (s.double() - s.double().mean(dim=-2, keepdim=True) for s in (x, y))
    grams = [x @ x.mT, y @ y.mT]                                  # (L, n, n) each
    curves = []
    for start in range(0, len(indices), chunk):
        idx = indices[start:start + chunk]                         # (b, n)
        k, l_ = (g[:, idx[:, :, None], idx[:, None, :]].transpose(0, 1) for g in grams)  # (b, L, n, n)
        norms = (hsic(k, k, debiased) * hsic(l_, l_, debiased)).sqrt()
        curves.append((hsic(k, l_, debiased) / torch.where(norms > 0, norms, torch.nan)).numpy())
    return np.concatenate(curves, axis=0)


def mossa_table(
    experimental: Mapping[str, Mapping[str, torch.Tensor]],
    controls: Mapping[str, torch.Tensor],
    clusters: Mapping[str, str],
    *,
    kernels: Sequence[str] = ("linear",),
    debiased: bool = False,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    heldout: Mapping[str, Collection[str]] | None = None,
    kernel_args: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Tidy MOSSA table, one row per (experimental model, task, layer, kernel).

    ``experimental[model][task]`` and ``controls[task]`` are ``(L+1, n, d)`` stacks of the same
    inputs; ``clusters[task]`` names the task's cluster; ``heldout[model]`` lists the tasks that
    model never saw in training (column ``heldout``).  ``kernel_args[kernel]`` holds extra kernel
    parameters (e.g. ``{"rbf": {"sigma_scale": 1.0}}``).  Without bootstrap ``ci_low``/``ci_high``
    are NaN.  Where CKA is undefined (constant states on a side, e.g. the embedding layer under
    last-token pooling when every prompt ends in the same token) ``cka`` and its interval are NaN.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    heldout = {m: set(t) for m, t in (heldout or {}).items()}
    kernel_args = kernel_args or {}
    alpha = (1 - confidence) / 2
    rows = []
    for model, by_task in experimental.items():
        for task, states in by_task.items():
            if task not in controls:
                raise KeyError(f"no control model states for task {task!r} (experimental model {model!r})")
            control = controls[task]
            if states.shape[:2] != control.shape[:2]:
                raise ValueError(
                    f"task {task!r}: experimental model {model!r} states {tuple(states.shape)} and control states "
                    f"{tuple(control.shape)} differ in layers or inputs"
                )
            for kernel in kernels:
                args = kernel_args.get(kernel, {})
                curve = _cka_curve(states, control, kernel, debiased, args)
                low = high = np.full_like(curve, np.nan)
                if n_bootstrap > 0:
                    boot = bootstrap_curves(states, control, kernel=kernel, debiased=debiased,
                                            n_bootstrap=n_bootstrap, seed=_task_seed(seed, task), kernel_args=args)
                    with warnings.catch_warnings():  # a layer with undefined CKA gives NaN bounds
                        warnings.simplefilter("ignore", RuntimeWarning)
                        low, high = np.nanquantile(boot, [alpha, 1 - alpha], axis=0)
                    low, high = np.where(np.isnan(curve), np.nan, low), np.where(np.isnan(curve), np.nan, high)
                for layer, value in enumerate(curve):
                    rows.append((model, task, clusters.get(task, "uncategorised"), task in heldout.get(model, ()),
                                 layer, kernel, float(value), float(low[layer]), float(high[layer])))
    table = pd.DataFrame(rows, columns=MOSSA_COLUMNS)
    undefined = table[table["cka"].isna()]
    if len(undefined):
        layers = sorted(set(undefined["layer"]))
        why = (" (expected with last-token pooling when every prompt ends in the same token: layer 0 is that "
               "token's embedding)") if layers == [0] else ""
        warnings.warn(f"CKA undefined (constant states) for {len(undefined)} of {len(table)} rows, at layers "
                      f"{layers}; they are NaN in the table{why}", SimilarityWarning, stacklevel=2)
    return table


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


def model_differences(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """CKA of every other experimental model minus ``baseline``'s, per (task, layer, kernel).

    Columns: ``experimental_model, baseline, task, cluster, layer, kernel, cka_diff``.
    """
    if baseline not in set(table["experimental_model"]):
        raise KeyError(f"baseline model {baseline!r} not in the table; it has {sorted(set(table['experimental_model']))}")
    keys = ["task", "layer", "kernel"]
    base = table[table["experimental_model"] == baseline].set_index(keys)["cka"]
    others = table[table["experimental_model"] != baseline]
    diff = others.join(base.rename("baseline_cka"), on=keys)
    diff = diff.assign(baseline=baseline, cka_diff=diff["cka"] - diff["baseline_cka"])
    return diff[["experimental_model", "baseline", "task", "cluster", "layer", "kernel", "cka_diff"]].reset_index(drop=True)
