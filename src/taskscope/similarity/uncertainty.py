"""Uncertainty for CKA: bootstrap confidence intervals over inputs and a permutation test.

Both work on the Gram matrices of the full sample, computed once: a resample's (or permutation's)
Gram matrix is a gather of rows and columns of the full one, and double centring / U-centring commute
with permutations, so every resample costs ``O(n^2)`` instead of ``O(n^2 d)``.  Draws come from
``numpy.random.default_rng(seed)``; stacks ``(..., n, d)`` share the same draws at every leading
position (paired across layers).  The RBF bandwidth is the full sample's (the kernel is fixed; only
the inputs are resampled).

Duplicated rows and the unbiased estimator: a bootstrap resample repeats about 37% of the rows; the
unbiased HSIC treats a repeated pair like an independent pair and its expectation over resamples is
the *biased* HSIC of the original sample, so the interval would be centred on the wrong estimator.
For ``debiased=True`` each resample therefore keeps its distinct rows only (about ``0.632 n``;
:func:`~.hsic.masked_centre`), which removes the bias at the price of a conservative (wider) interval.
The biased estimator uses every drawn row, duplicates included, as the plug-in bootstrap prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taskscope.similarity.cka import CHUNK_BYTES, unit_centred_grams
from taskscope.similarity.hsic import centre, masked_centre, unit_frobenius
from taskscope.similarity.inputs import (
    NanPolicy,
    Precision,
    constant_positions,
    min_rows,
    prepare_pair,
    to_output,
    warn_undefined,
)
from taskscope.similarity.kernels import get_kernel


@dataclass(frozen=True)
class BootstrapResult:
    """``estimate`` on the full sample, percentile interval ``[low, high]``, and the resampled values
    ``distribution`` of shape ``(n_resamples, ...)``."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    confidence: float
    distribution: np.ndarray


@dataclass(frozen=True)
class PermutationResult:
    """Observed CKA, one-sided p-value ``(1 + #{null >= observed}) / (1 + n_permutations)``, null values."""

    statistic: float | np.ndarray
    p_value: float | np.ndarray
    null_distribution: np.ndarray


def _grams(X: object, Y: object, kernel: str, debiased: bool, precision: Precision, nan_policy: NanPolicy,
           kernel_args: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked pair -> (Gram of X, Gram of Y, bool ``(...)`` where a side is constant)."""
    kern = get_kernel(kernel, **kernel_args)
    x, y = prepare_pair(X, Y, nan_policy=nan_policy, minimum_rows=max(min_rows(debiased), 3), what="CKA uncertainty")
    if x.shape[:-2] != y.shape[:-2]:
        raise ValueError(f"X and Y need the same leading shape here, got {tuple(x.shape[:-2])} and {tuple(y.shape[:-2])}")
    return kern.gram(x, precision), kern.gram(y, precision), constant_positions(x) | constant_positions(y)


def _chunk(n: int, positions: int) -> int:
    return max(1, CHUNK_BYTES // (6 * 8 * n * n * max(positions, 1)))


def _cosine(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    ux, _ = unit_frobenius(cx)
    uy, _ = unit_frobenius(cy)
    return (ux * uy).sum(dim=(-2, -1))


def _resample_values(k: torch.Tensor, l: torch.Tensor, idx: torch.Tensor, debiased: bool) -> torch.Tensor:
    """CKA on resamples ``idx (c, n)`` of Grams ``(..., n, n)`` -> ``(c, ...)``."""
    if debiased:
        mask = torch.zeros(idx.shape, dtype=torch.float64, device=k.device).scatter_(1, idx, 1.0)
        cx = masked_centre(k.unsqueeze(-3), mask, True)
        cy = masked_centre(l.unsqueeze(-3), mask, True)
    else:
        rows, cols = idx[:, :, None], idx[:, None, :]
        cx, cy = centre(k[..., rows, cols], False), centre(l[..., rows, cols], False)
    return _cosine(cx, cy).movedim(-1, 0)


def bootstrap_ci(
    X: object,
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    **kernel_args: object,
) -> BootstrapResult:
    """Percentile bootstrap interval for CKA, resampling rows (inputs) of both sides jointly.

    Order: Grams once; ``n_resamples`` index vectors from ``default_rng(seed)``; per chunk, gather
    (biased) or mask to distinct rows (debiased, see module doc), centre, cosine; NaN resamples (a
    resample of a nearly constant side) are left out of the quantiles with a warning.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    k, l, constant = _grams(X, Y, kernel, debiased, precision, nan_policy, kernel_args)
    n, positions = k.shape[-1], int(np.prod(k.shape[:-2], dtype=np.int64))
    estimate = _cosine(centre(k, debiased), centre(l, debiased))
    estimate[constant] = torch.nan
    indices = torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))).to(k.device)
    step = _chunk(n, positions)
    values = torch.cat([_resample_values(k, l, indices[s:s + step], debiased) for s in range(0, n_resamples, step)])
    values[:, constant] = torch.nan
    dist = values.cpu().numpy()
    if np.isnan(dist).any():
        warn_undefined(int(np.isnan(dist).sum()), "bootstrap resamples with a constant side; left out of the interval")
    alpha = 1.0 - confidence
    low, high = np.nanquantile(dist, [alpha / 2, 1 - alpha / 2], axis=0)
    scalar = dist.ndim == 1
    return BootstrapResult(
        estimate=to_output(estimate),
        low=float(low) if scalar else low,
        high=float(high) if scalar else high,
        confidence=confidence,
        distribution=dist,
    )


def permutation_test(
    X: object,
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    **kernel_args: object,
) -> PermutationResult:
    """Test the null "rows of Y are unrelated to rows of X" by permuting Y's rows.

    Order: both sides' unit centred Grams once; ``n_permutations`` permutations from
    ``default_rng(seed)``; each null value is ``<C_X, C_Y[pi, pi]>`` (centring commutes with
    permutations); one-sided p-value with the +1 correction (never 0).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    kern = get_kernel(kernel, **kernel_args)
    x, y = prepare_pair(X, Y, nan_policy=nan_policy, minimum_rows=max(min_rows(debiased), 3), what="permutation test")
    if x.shape[:-2] != y.shape[:-2]:
        raise ValueError(f"X and Y need the same leading shape here, got {tuple(x.shape[:-2])} and {tuple(y.shape[:-2])}")
    ux, bad_x = unit_centred_grams(x, kern, debiased, precision)
    uy, bad_y = unit_centred_grams(y, kern, debiased, precision)
    if bool((bad_x | bad_y).any()):
        warn_undefined(int((bad_x | bad_y).sum()), "a representation is constant over the inputs")
    n, positions = x.shape[-2], int(np.prod(x.shape[:-2], dtype=np.int64))
    observed = (ux * uy).sum(dim=(-2, -1))
    rng = np.random.default_rng(seed)
    perms = torch.from_numpy(np.stack([rng.permutation(n) for _ in range(n_permutations)])).to(ux.device)
    step = _chunk(n, positions)
    null = []
    for s in range(0, n_permutations, step):
        p = perms[s:s + step]
        permuted = uy[..., p[:, :, None], p[:, None, :]]                    # (..., c, n, n)
        null.append((ux.unsqueeze(-3) * permuted).sum(dim=(-2, -1)).movedim(-1, 0))
    null_values = torch.cat(null)
    exceed = (null_values >= observed.unsqueeze(0) - 1e-12).sum(dim=0).to(torch.float64)
    p_value = (1.0 + exceed) / (1.0 + n_permutations)
    p_value = torch.where(torch.isnan(observed), torch.nan, p_value)
    return PermutationResult(statistic=to_output(observed), p_value=to_output(p_value),
                             null_distribution=null_values.cpu().numpy())
