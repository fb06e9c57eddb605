"""How much of a CKA value a few directions or inputs carry (Davari et al. 2022, "Reliability of CKA").

CKA can be driven by one dominant principal direction (LLM hidden states have a few massive
dimensions) or moved at will by a handful of outlier inputs.  :func:`cka_sensitivity` reports, for a
2-D pair, in this order:

1. ``cka``: the value on all inputs;
2. ``without_top_pcs[k-1]``: CKA after projecting out the top ``k`` principal directions of *each*
   side (``k = 1..top_k``; float64 SVD of the centred data, :func:`remove_top_directions`, which
   :func:`cka_without_top_directions` applies to stacks for the MOSSA table);
3. ``top_pc_variance``: the share of each side's variance on its top principal direction;
4. ``leave_one_out[i]``: CKA without input ``i`` (all ``n`` at once, from the full Gram matrices with
   :func:`~.hsic.masked_centre`, no recomputation of kernels);
5. ``influential``: inputs sorted by ``|leave_one_out - cka|``, largest first, and
   ``without_influential``: CKA after dropping the ``n_influential`` most influential inputs together.

A value that collapses in (2) or (5) rests on one direction or a few inputs, not on broad agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taskscope.similarity.cka import CHUNK_BYTES, cka
from taskscope.similarity.hsic import masked_centre, unit_frobenius
from taskscope.similarity.inputs import NanPolicy, Precision, min_rows, prepare_pair
from taskscope.similarity.kernels import get_kernel


@dataclass(frozen=True)
class SensitivityReport:
    cka: float
    without_top_pcs: np.ndarray
    top_pc_variance: tuple[float, float]
    leave_one_out: np.ndarray
    influential: np.ndarray
    without_influential: float

    @property
    def max_leave_one_out_change(self) -> float:
        return float(np.nanmax(np.abs(self.leave_one_out - self.cka)))


def remove_top_directions(x: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., n, d)`` -> (``(top_k, ..., n, d)``: the centred data without its top ``1..top_k`` principal
    directions, ``(top_k, ...)``: the share of the variance on the top ``1..top_k`` directions).

    float64 thin SVD of the centred data per position; a constant position has NaN shares.
    """
    x64 = x.to(torch.float64)
    xc = x64 - x64.mean(dim=-2, keepdim=True)
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    power = s.square()
    total = power.sum(dim=-1)
    shares = power.cumsum(dim=-1)[..., :top_k] / torch.where(total > 0, total, torch.nan)[..., None]
    variants = []
    for k in range(1, top_k + 1):
        v = vh[..., :k, :].mT                                   # (..., d, k)
        variants.append(xc - (xc @ v) @ v.mT)
    return torch.stack(variants), shares.movedim(-1, 0)


def cka_without_top_directions(
    X: object,
    Y: object,
    top_k: int,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    precision: Precision = "fast",
    **kernel_args: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacks ``(..., n, d1)``, ``(..., n, d2)`` -> (CKA without each side's top ``top_k`` principal
    directions, share of X's variance on them, share of Y's), each a float64 array of the leading shape."""
    x, y = prepare_pair(X, Y, minimum_rows=min_rows(debiased) + 1, what="cka_without_top_directions")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    x_removed, share_x = remove_top_directions(x, top_k)
    y_removed, share_y = remove_top_directions(y, top_k)
    value = np.asarray(cka(x_removed[-1], y_removed[-1], kernel, debiased, precision=precision, **kernel_args))
    return value, share_x[-1].cpu().numpy(), share_y[-1].cpu().numpy()


def _subset_cka(k: torch.Tensor, l: torch.Tensor, masks: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Full Grams ``(n, n)``, row masks ``(m, n)`` -> CKA on each subset ``(m,)``, chunked."""
    n = k.shape[-1]
    step = max(1, CHUNK_BYTES // (6 * 8 * n * n))
    values = []
    for s in range(0, masks.shape[0], step):
        ux, _ = unit_frobenius(masked_centre(k, masks[s:s + step], debiased))
        uy, _ = unit_frobenius(masked_centre(l, masks[s:s + step], debiased))
        values.append((ux * uy).sum(dim=(-2, -1)))
    return torch.cat(values)


def cka_sensitivity(
    X: object,
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    top_k: int | None = None,
    n_influential: int | None = None,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    **kernel_args: object,
) -> SensitivityReport:
    """Robustness report for CKA of a 2-D pair (see the module docstring for each field).

    ``top_k`` defaults to 3 (fewer when a side has fewer directions); ``n_influential`` to 5% of
    the inputs (at least 1).
    """
    x, y = prepare_pair(X, Y, nan_policy=nan_policy, minimum_rows=min_rows(debiased) + 1, what="cka_sensitivity")
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"cka_sensitivity takes 2-D (n, d) inputs, got {tuple(x.shape)} and {tuple(y.shape)}")
    n = x.shape[0]
    rank_limit = min(n - 1, x.shape[1], y.shape[1]) - 1
    top_k = min(3, max(rank_limit, 1)) if top_k is None else top_k
    if not 1 <= top_k <= rank_limit:
        raise ValueError(f"top_k must be between 1 and {rank_limit} for these shapes, got {top_k}")
    n_influential = max(1, round(0.05 * n)) if n_influential is None else n_influential
    if not 1 <= n_influential <= n - min_rows(debiased):
        raise ValueError(f"n_influential must be between 1 and {n - min_rows(debiased)}, got {n_influential}")
    options = dict(precision=precision, **kernel_args)

    full = float(cka(x, y, kernel, debiased, **options))
    x_removed, share_x = remove_top_directions(x, top_k)
    y_removed, share_y = remove_top_directions(y, top_k)
    without_pcs = np.atleast_1d(cka(x_removed, y_removed, kernel, debiased, **options))

    kern = get_kernel(kernel, **kernel_args)
    gx, gy = kern.gram(x, precision), kern.gram(y, precision)
    loo_masks = 1.0 - torch.eye(n, dtype=torch.float64, device=gx.device)
    loo = _subset_cka(gx, gy, loo_masks, debiased).cpu().numpy()
    order = np.argsort(-np.abs(loo - full), kind="stable")
    drop_mask = torch.ones(1, n, dtype=torch.float64, device=gx.device)
    drop_mask[0, torch.from_numpy(order[:n_influential].copy())] = 0.0
    without_influential = float(_subset_cka(gx, gy, drop_mask, debiased)[0])
    return SensitivityReport(
        cka=full,
        without_top_pcs=without_pcs,
        top_pc_variance=(float(share_x[0]), float(share_y[0])),
        leave_one_out=loo,
        influential=order,
        without_influential=without_influential,
    )
