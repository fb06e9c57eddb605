"""Uncertainty for CKA: calibrated bootstrap intervals, paired differences, permutation tests.

Everything works on the kernel (Gram) matrices of the full sample, computed once
(:meth:`~.kernels.Kernel.gram`; the RBF bandwidth is the full sample's and is never re-estimated):
a resample (or a leave-one-out sample) is a vector of row counts ``w``, and the centred inner
products of its Gram matrix ``K[idx][:, idx]`` are sums of ``w' K``, ``w'(K o L) w`` and the diagonals
(:func:`~.resampling.sample_cka`): one batched matrix product for all resamples at once, ``O(n^2)``
per resample and matrix instead of ``O(n^2 d)``, without gathering ``n x n`` copies.  Stacks
``(..., n, d)`` share the same draws at every leading position (paired across layers).  Draws:
:func:`resample_indices` (``numpy.random.default_rng(seed)``); the same ``seed`` gives the same
resampled inputs in :func:`bootstrap_ci`, :func:`bootstrap_grid` and :func:`paired_difference`, so
every model compared with one control sees the same resamples (:func:`bootstrap_grid` computes the
control's part once for all of them).

The interval (:data:`METHOD`), in this order:

1. ``estimate``: CKA on all ``n`` inputs (the chosen estimator, biased or debiased); ``t``: the
   *debiased* CKA on all inputs, the interval's statistic whichever estimator is chosen (both estimate
   the same population value; the biased estimator's own interval under-covers when the states have
   many dimensions next to ``n``: 42-83 % for 95 % in docs/similarity.md);
2. jackknife: the ``n`` leave-one-out values ``t_(i)``; ``bias_corrected = n * t - (n - 1) *
   mean(t_(i))`` (Quenouille's bias correction);
3. bootstrap: ``n_resamples`` with-replacement resamples of the inputs, duplicates kept (the plug-in
   bootstrap; the resampled Gram is U-centred as it is, duplicate pairs included), ``t`` on each ->
   ``distribution``;
4. ``[low, high] = bias_corrected + (quantiles(distribution, alpha/2, 1 - alpha/2) - mean(distribution))
   * se_jack / sd(distribution)``, clipped to ``[-1, 1]``, with ``se_jack = sqrt((n-1)/n sum (t_(i) -
   mean t_(.))^2)``: the bootstrap supplies the shape, the jackknife the centre and the scale.

Why: biased CKA is biased upwards by ``O(1/n)`` with a large constant (a plain percentile interval
around it covered 0 % in a d = 12, n = 50 simulation), and the bootstrap's own bias estimate is
poor for it; the jackknife's is good.  The bias-corrected centre varies more than the estimate the
bootstrap spread describes; the jackknife standard error (slightly conservative, Efron & Stein
1981) measured closer to nominal than the bootstrap spread.  Simulated coverage of the population CKA is in
docs/similarity.md and in ``tests/test_similarity_coverage.py``.  The interval is an interval for
the *population* CKA, so it need not contain a strongly biased ``estimate``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import torch

from taskscope.similarity.cka import CHUNK_BYTES, unit_centred_grams
from taskscope.similarity.hsic import centre
from taskscope.similarity.inputs import (
    NanPolicy,
    Precision,
    SimilarityWarning,
    all_finite,
    as_tensor,
    check_rows,
    finite_rows,
    largest_magnitude,
    min_rows,
    prepare_pair,
    to_output,
    warn_undefined,
)
from taskscope.similarity.kernels import Kernel, centred_data, get_kernel
from taskscope.similarity.resampling import sample_cka

IntervalMethod = Literal["percentile", "normal"]
METHODS: dict[str, str] = {
    "percentile": "jackknife-centred, jackknife-scaled percentile of the debiased CKA",
    "normal": "jackknife bias-corrected normal interval of the debiased CKA",
}
METHOD = METHODS["percentile"]


@dataclass(frozen=True)
class BootstrapResult:
    """``estimate`` (the chosen estimator) on the full sample, interval ``[low, high]`` for the population value
    (see the module docstring), the jackknife ``bias_corrected`` debiased estimate, and the resampled debiased
    values ``distribution`` of shape ``(n_resamples, ...)``."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    confidence: float
    distribution: np.ndarray
    bias_corrected: float | np.ndarray
    method: str = METHOD


@dataclass(frozen=True)
class DifferenceResult:
    """``CKA(X_a, Y) - CKA(X_b, Y)``: ``estimate``, interval ``[low, high]`` and ``bias_corrected`` as in
    :class:`BootstrapResult` (same resampled inputs on both sides), two-sided permutation ``p_value``
    (NaN without permutations), ``distribution (n_resamples, ...)``, ``null_distribution (n_permutations, ...)``."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    confidence: float
    p_value: float | np.ndarray
    distribution: np.ndarray
    null_distribution: np.ndarray
    bias_corrected: float | np.ndarray
    method: str = METHOD


@dataclass(frozen=True)
class PermutationResult:
    """Observed CKA, one-sided p-value ``(1 + #{null >= observed}) / (1 + n_permutations)``, null values."""

    statistic: float | np.ndarray
    p_value: float | np.ndarray
    null_distribution: np.ndarray


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n)`` row indices drawn with replacement from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _check(confidence: float, n_resamples: int, minimum: int = 1, interval: str = "percentile") -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if interval not in METHODS:
        raise ValueError(f"interval must be one of {sorted(METHODS)}, got {interval!r}")
    if interval == "normal":
        minimum = 0
    if n_resamples < minimum:
        raise ValueError(f"n_resamples must be >= {minimum}, got {n_resamples}")


def _gram(x: torch.Tensor, kern: Kernel, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-sample Gram ``(..., n, n)``, peak-scaled (:func:`_peak_scaled`), and bool ``(...)`` where the side is
    exactly constant."""
    data = centred_data(x, precision)
    return _peak_scaled(kern.gram_centred(data), kern.bounded_by_diagonal), data.constant


def _chunk(n: int, positions: int, sides: int = 2) -> int:
    return max(1, CHUNK_BYTES // (3 * sides * 8 * n * n * max(positions, 1)))


def _cosine(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """``<cx, cy>_F / (||cx||_F ||cy||_F)`` over the last two dimensions (NaN where a norm is 0)."""
    a, b = cx.flatten(-2), cy.flatten(-2)
    norms = (torch.linalg.vecdot(a, a) * torch.linalg.vecdot(b, b)).sqrt()
    return torch.linalg.vecdot(a, b) / torch.where(norms > 0, norms, torch.nan)


SAFE_PEAKS = (2.0 ** -40, 2.0 ** 40)  # Gram peaks whose products G_a o G_b and sums of squares fit float32 / float64


def _peak_scaled(gram: torch.Tensor, bounded_by_diagonal: bool) -> torch.Tensor:
    """Divide a Gram stack by its largest absolute entry per position (CKA is scale free; keeps the float32
    products of the resampling stack and the float64 sums of squares finite); a stack whose every peak lies in
    :data:`SAFE_PEAKS` is returned as it is (no pass over it).  ``bounded_by_diagonal`` (a positive-semidefinite
    kernel, ``|G_ij| <= max(G_ii, G_jj)``): the peak is read off the diagonal instead of the whole matrix."""
    if bounded_by_diagonal:
        peak = torch.diagonal(gram, dim1=-2, dim2=-1).amax(dim=-1)[..., None, None]
    else:
        peak = largest_magnitude(gram, keepdim=True)
    usable = torch.isfinite(peak) & (peak > 0)
    if bool((~usable | ((peak >= SAFE_PEAKS[0]) & (peak <= SAFE_PEAKS[1]))).all()):
        return gram
    return gram / torch.where(usable, peak, torch.ones_like(peak))


def _interval(estimate: np.ndarray, loo: np.ndarray, dist: np.ndarray, confidence: float,
              bound: float, method: IntervalMethod = "percentile") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2 and 4 of the module docstring (``method="normal"``: ``bias_corrected -/+ z se_jack``, no
    ``dist``) -> ``(low, high, bias_corrected)``."""
    n = loo.shape[0]
    alpha = 1.0 - confidence
    with warnings.catch_warnings():  # all-NaN positions (undefined CKA) stay NaN; reported once by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        loo_mean = np.nanmean(loo, axis=0)
        corrected = n * estimate - (n - 1) * loo_mean
        jackknife_se = np.sqrt((n - 1) / n * np.nansum((loo - loo_mean) ** 2, axis=0))
        if method == "normal":
            z = NormalDist().inv_cdf(1 - alpha / 2)
            low_step, high_step = -z * jackknife_se, z * jackknife_se
        else:
            low_q, high_q = np.nanquantile(dist, [alpha / 2, 1 - alpha / 2], axis=0)
            centre_, spread = np.nanmean(dist, axis=0), np.nanstd(dist, axis=0)
            scale = np.where(spread > 0, jackknife_se / np.where(spread > 0, spread, 1.0), 0.0)
            low_step, high_step = (low_q - centre_) * scale, (high_q - centre_) * scale
    low = np.clip(corrected + low_step, -bound, bound)
    high = np.clip(corrected + high_step, -bound, bound)
    undefined = np.isnan(estimate)
    return (np.where(undefined, np.nan, low), np.where(undefined, np.nan, high),
            np.where(undefined, np.nan, corrected))


def _out(a: np.ndarray) -> float | np.ndarray:
    return float(a) if np.ndim(a) == 0 else a


def _prepare_sides(sides: list[object], names: list[str], debiased: bool, nan_policy: NanPolicy,
                   what: str) -> list[torch.Tensor]:
    """Convert and check several sides of one set of inputs (:func:`~.inputs.prepare_pair`'s rules, all at once)."""
    tensors = [as_tensor(s, name) for s, name in zip(sides, names)]
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.shape[-2] != first.shape[-2] or t.shape[:-2] != first.shape[:-2]:
            raise ValueError(f"{what}: {name} has shape {tuple(t.shape)} but {names[0]} has {tuple(first.shape)}; "
                             f"they need the same leading shape and the same rows (inputs)")
    tensors = [t.to(first.device) for t in tensors]
    if not all(all_finite(t) for t in tensors):
        keep = torch.stack([finite_rows(t) for t in tensors]).all(dim=0)
        if not bool(keep.all()):
            bad = (~keep).nonzero().flatten().tolist()
            if nan_policy != "drop_rows":
                raise ValueError(f"{what}: NaN/inf in rows {bad[:10]} ({len(bad)} rows); pass nan_policy='drop_rows' "
                                 f"to drop these rows from every side")
            warnings.warn(f"dropping {len(bad)} non-finite rows {bad[:10]} from every side", SimilarityWarning,
                          stacklevel=3)
            tensors = [t[..., keep, :] for t in tensors]
    check_rows(first.shape[-2] if nan_policy != "drop_rows" else tensors[0].shape[-2],
               min_rows(True), what)   # the intervals use the debiased estimator whichever is reported
    return tensors


def _prepared_grams(sides: list[object], names: list[str], kernel: str, debiased: bool, precision: Precision,
                    nan_policy: NanPolicy, kernel_args: dict,
                    what: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Check the sides (``sides[0]`` is ``Y``) -> peak-scaled Grams and, per side, bool ``(...)``: it is constant."""
    kern = get_kernel(kernel, **kernel_args)
    tensors = _prepare_sides(sides, names, debiased, nan_policy, what)
    grams, constants = [], []
    for t in tensors:
        g, c = _gram(t, kern, precision)
        grams.append(g)
        constants.append(c)
    return grams, constants


def _indices(n: int, n_resamples: int, seed: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(resample_indices(n, n_resamples, seed)).to(device)


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
    interval: IntervalMethod = "percentile",
    **kernel_args: object,
) -> BootstrapResult:
    """Interval for the population CKA of ``X (..., n, d1)`` and ``Y (..., n, d2)`` (rows resampled jointly).

    Order (module docstring): Grams once; estimate; jackknife; ``n_resamples`` resamples from
    :func:`resample_indices` ``(n, n_resamples, seed)``; jackknife-centred percentile interval
    (``interval="normal"``: no resamples, ``bias_corrected -/+ z se_jack``; same coverage in simulation,
    docs/similarity.md).  Resamples with a constant side are NaN and left out of the quantiles with a warning.
    """
    return bootstrap_grid([X], Y, kernel, debiased, n_resamples=n_resamples, confidence=confidence, seed=seed,
                          precision=precision, nan_policy=nan_policy, interval=interval, **kernel_args)[0]


def bootstrap_grid(
    Xs: Sequence[object],
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    interval: IntervalMethod = "percentile",
    **kernel_args: object,
) -> list[BootstrapResult]:
    """:func:`bootstrap_ci` of every ``Xs[i] (..., n, d_i)`` with one ``Y (..., n, d)``, on the same resampled inputs.

    ``Y``'s Gram matrix, its products and its resampled sums are computed once for all ``Xs`` (MOSSA:
    every experimental model against one task's control), and each ``Xs[i]``'s once; result ``i``
    equals ``bootstrap_ci(Xs[i], Y, ...)``.  ``nan_policy="drop_rows"`` drops a row non-finite in any
    stack from all of them.  ``interval="normal"`` draws no resamples (``n_resamples`` unused).
    """
    _check(confidence, n_resamples, interval=interval)
    n_drawn = n_resamples if interval == "percentile" else 0
    if len(Xs) == 0:
        raise ValueError("bootstrap_grid needs at least one X")
    names = ["X"] if len(Xs) == 1 else [f"Xs[{i}]" for i in range(len(Xs))]
    grams, constants = _prepared_grams([Y, *Xs], ["Y", *names], kernel, debiased, precision, nan_policy, kernel_args,
                                       "CKA bootstrap")
    n = grams[0].shape[-1]
    values = sample_cka(grams, [(i, 0) for i in range(1, len(grams))], _indices(n, n_drawn, seed, grams[0].device),
                        True, precision)
    results, resampled_undefined = [], 0
    for i in range(len(Xs)):
        constant = constants[0] | constants[i + 1]
        estimate = values.estimate[i] if debiased else values.biased[i]
        centre_, resampled = values.estimate[i], values.resampled[:, i]
        estimate[constant] = centre_[constant] = torch.nan
        resampled[:, constant] = torch.nan
        dist = resampled.cpu().numpy()
        resampled_undefined += int(np.isnan(dist[:, ~constant.cpu().numpy()]).sum())
        low, high, corrected = _interval(centre_.cpu().numpy(), values.leave_one_out[:, i].cpu().numpy(), dist,
                                         confidence, 1.0, interval)
        results.append(BootstrapResult(estimate=to_output(estimate), low=_out(low), high=_out(high),
                                       confidence=confidence, distribution=dist, bias_corrected=_out(corrected),
                                       method=METHODS[interval]))
    if resampled_undefined:
        warn_undefined(resampled_undefined, "bootstrap resamples with a constant side; left out of the interval")
    return results


def paired_difference(
    X_a: object,
    X_b: object,
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    interval: IntervalMethod = "percentile",
    **kernel_args: object,
) -> DifferenceResult:
    """``CKA(X_a, Y) - CKA(X_b, Y)`` with a paired interval and a paired permutation p-value
    (``n_resamples=0``: no interval, NaN, unless ``interval="normal"``, which needs no resamples;
    ``n_permutations=0``: no test, NaN).

    Order: each side's Gram once; the difference of the two estimates; the debiased statistic's
    difference, its jackknife and its bootstrap on the *same* resampled inputs for both models
    (:func:`resample_indices` with ``seed``, the resamples :func:`bootstrap_ci` uses), the interval of
    ``interval``;
    then the permutation test (``n_permutations > 0``, needs ``X_a`` and ``X_b`` of one width):
    under the null "the two models' states are exchangeable input by input", each permutation swaps
    ``a_i`` and ``b_i`` for a random half of the inputs (a gather of the pooled Gram matrix of
    ``[X_a; X_b]``, so RBF uses the pooled sample's bandwidth here), and ``p = (1 + #{|T_perm| >=
    |T_obs|}) / (1 + n_permutations)`` (two-sided, never 0), with ``T`` the difference computed from
    the pooled Gram matrix.
    """
    _check(confidence, n_resamples, minimum=0, interval=interval)
    n_drawn = n_resamples if interval == "percentile" else 0
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    grams, constants = _prepared_grams([Y, X_a, X_b], ["Y", "X_a", "X_b"], kernel, debiased, precision, nan_policy,
                                       kernel_args, "paired CKA difference")
    constant = constants[0] | constants[1] | constants[2]
    n = grams[0].shape[-1]
    values = sample_cka(grams, [(1, 0), (2, 0)], _indices(n, n_drawn, seed, grams[0].device), True, precision)
    chosen = values.estimate if debiased else values.biased
    estimate = chosen[0] - chosen[1]
    estimate[constant] = torch.nan
    est = estimate.cpu().numpy()
    low = high = corrected = np.full(est.shape, np.nan)
    dist = np.empty((0, *est.shape))
    if n_drawn > 0 or interval == "normal":
        centre_ = values.estimate[0] - values.estimate[1]
        centre_[constant] = torch.nan
        differences = values.resampled[:, 0] - values.resampled[:, 1]
        differences[:, constant] = torch.nan
        dist = differences.cpu().numpy()
        loo = (values.leave_one_out[:, 0] - values.leave_one_out[:, 1]).cpu().numpy()
        low, high, corrected = _interval(centre_.cpu().numpy(), loo, dist, confidence, 2.0, interval)
    null = np.empty((0, *est.shape))
    p_value = np.full(est.shape, np.nan)
    if n_permutations > 0:
        null, p_value = _swap_test(X_a, X_b, grams[0], kernel, debiased, precision, nan_policy, kernel_args,
                                   n_permutations, seed)
        p_value = np.where(np.isnan(est), np.nan, p_value)
    return DifferenceResult(estimate=to_output(estimate), low=_out(low), high=_out(high), confidence=confidence,
                            p_value=_out(p_value), distribution=dist, null_distribution=null,
                            bias_corrected=_out(corrected), method=METHODS[interval])


def _swap_test(X_a: object, X_b: object, gram_y: torch.Tensor, kernel: str, debiased: bool, precision: Precision,
               nan_policy: NanPolicy, kernel_args: dict, n_permutations: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired permutation null of ``CKA(A', Y) - CKA(B', Y)`` (inputs' model labels swapped) -> null, p-value."""
    xa, xb = _prepare_sides([X_a, X_b], ["X_a", "X_b"], debiased, nan_policy, "paired permutation test")
    if xa.shape != xb.shape:
        raise ValueError(f"the paired permutation test swaps rows of X_a and X_b, so they need one shape; got "
                         f"{tuple(xa.shape)} and {tuple(xb.shape)} (pass n_permutations=0 to skip it)")
    n = gram_y.shape[-1]
    if xa.shape[-2] != n:
        raise ValueError("paired permutation test: X_a/X_b and Y lost different rows to nan_policy='drop_rows'")
    pooled, _ = _gram(torch.cat([xa, xb.to(xa.device)], dim=-2), get_kernel(kernel, **kernel_args), precision)
    pooled = pooled.to(gram_y.device)
    rng = np.random.default_rng([seed, 1])  # a stream apart from the bootstrap's resamples
    swaps = rng.integers(0, 2, size=(n_permutations, n))
    base = np.arange(n)
    side_a = torch.from_numpy(np.concatenate([base[None], base + n * swaps])).to(gram_y.device)
    side_b = torch.from_numpy(np.concatenate([base[None] + n, base + n * (1 - swaps)])).to(gram_y.device)
    positions = int(np.prod(gram_y.shape[:-2], dtype=np.int64))
    step = _chunk(n, positions, 3)
    cy = centre(gram_y, debiased).unsqueeze(-3)
    stats = []
    for s in range(0, side_a.shape[0], step):
        ia, ib = side_a[s:s + step], side_b[s:s + step]
        ca = centre(pooled[..., ia[:, :, None], ia[:, None, :]], debiased)
        cb = centre(pooled[..., ib[:, :, None], ib[:, None, :]], debiased)
        stats.append((_cosine(ca, cy) - _cosine(cb, cy)).movedim(-1, 0))
    values = torch.cat(stats).cpu().numpy()
    observed, null = values[0], values[1:]
    exceed = (np.abs(null) >= np.abs(observed) - 1e-12).sum(axis=0)
    return null, (1.0 + exceed) / (1.0 + n_permutations)


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
