"""The count-weighted resampling engine in its default float32 mode against explicit per-resample recomputation.

The reference builds every resample's (and every leave-one-out sample's) rows explicitly, evaluates the
kernel on them in float64 (RBF with the full sample's bandwidth, which the bootstrap keeps) and centres
with the textbook HSIC formulas of test_similarity_reference, duplicates kept as separate rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_similarity_reference import ref_gram, ref_hsic_biased, ref_hsic_unbiased, single_thread  # noqa: F401

from taskscope.similarity import bootstrap_ci, bootstrap_grid, paired_difference, resample_indices
from taskscope.similarity import resampling
from taskscope.similarity.resampling import sample_cka
from taskscope.similarity.uncertainty import _prepared_grams

TOL = 1e-6


def states(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A control and two models sharing part of its structure, with a massive dimension and an offset."""
    rng = np.random.default_rng(seed)
    control = rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=d)
    control[:, 0] *= 40.0
    a = control @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * rng.normal(size=(n, d)) + 7.0
    b = 0.3 * control[:, ::-1] + rng.normal(size=(n, d))
    return control.astype(np.float32), a.astype(np.float32), b.astype(np.float32)


def reference_cka(x: np.ndarray, y: np.ndarray, kernel: str, debiased: bool, sigmas: tuple[float, float]) -> float:
    if kernel == "rbf":   # the full sample's bandwidth, not the resample's
        def gram(z, sigma):
            sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
            return np.exp(-sq / (2 * sigma ** 2))
        k, l = gram(x, sigmas[0]), gram(y, sigmas[1])
    else:
        k, l = ref_gram(x, kernel), ref_gram(y, kernel)
    h = ref_hsic_unbiased if debiased else ref_hsic_biased
    return h(k, l) / np.sqrt(h(k, k) * h(l, l))


def median_distance(z: np.ndarray) -> float:
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    return float(np.median(d[np.triu_indices(len(z), 1)]))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_fast_resampled_jackknife_and_paired_values_equal_explicit_recomputation(kernel, debiased):
    control, a, b = (z.astype(np.float64) for z in states(0, 48, 20))
    n, n_resamples = control.shape[0], 40
    sides = [control, a, b]
    sigma = {id(z): median_distance(z) for z in sides}
    ref = lambda x, y, rows, estimator=debiased: reference_cka(x[rows], y[rows], kernel, estimator,
                                                               (sigma[id(x)], sigma[id(y)]))
    grams, _ = _prepared_grams(sides, ["Y", "A", "B"], kernel, debiased, "fast", "raise", {}, "test")
    indices = resample_indices(n, n_resamples, seed=11)
    out = sample_cka(grams, [(1, 0), (2, 0)], torch.from_numpy(indices), debiased, "fast")
    everything = np.arange(n)
    for j, x in enumerate([a, b]):
        assert float(out.estimate[j]) == pytest.approx(ref(x, control, everything), abs=TOL)
        assert float(out.biased[j]) == pytest.approx(ref(x, control, everything, False), abs=TOL)
        loo = [ref(x, control, np.delete(everything, i)) for i in range(n)]
        np.testing.assert_allclose(out.leave_one_out[:, j].numpy(), loo, atol=TOL)
        resampled = [ref(x, control, rows) for rows in indices]              # duplicates kept
        np.testing.assert_allclose(out.resampled[:, j].numpy(), resampled, atol=TOL)
    diff = paired_difference(a, b, control, kernel, debiased, n_resamples=n_resamples, n_permutations=0, seed=11)
    explicit = [ref(a, control, rows, True) - ref(b, control, rows, True) for rows in indices]  # interval: debiased
    np.testing.assert_allclose(diff.distribution, explicit, atol=2 * TOL)
    assert diff.estimate == pytest.approx(ref(a, control, everything) - ref(b, control, everything), abs=2 * TOL)


@pytest.mark.parametrize("debiased", [False, True])
def test_bootstrap_grid_is_bootstrap_ci_per_model_on_the_same_resamples(debiased):
    control, a, b = states(1, 30, 12)
    stacked = [np.stack([z, 2 * z + 1]) for z in (control, a, b)]       # two layers
    grid = bootstrap_grid(stacked[1:], stacked[0], "rbf", debiased, n_resamples=50, seed=3)
    for x, result in zip(stacked[1:], grid):
        single = bootstrap_ci(x, stacked[0], "rbf", debiased, n_resamples=50, seed=3)
        np.testing.assert_allclose(result.distribution, single.distribution, atol=TOL)
        np.testing.assert_allclose([result.low, result.high, result.estimate],
                                   [single.low, single.high, single.estimate], atol=TOL)
    with pytest.raises(ValueError, match="at least one X"):
        bootstrap_grid([], control)
    with pytest.raises(ValueError, match=r"Xs\[1\]"):
        bootstrap_grid([a, b[:-1]], control)


def test_fast_mode_falls_back_to_float64_where_its_rounding_estimate_is_too_large(monkeypatch):
    """A cubic kernel on 14 inputs: float32 sums alone are off by more than the tolerance here (a dominant
    diagonal that U-centring removes); the rounding estimate sends those positions to float64."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(14, 3))
    y = x @ rng.normal(size=(3, 3)) + rng.normal(size=(14, 3))
    args = dict(n_resamples=20, seed=3, degree=3, coef0=0.0)
    exact = bootstrap_ci(x, y, "poly", True, precision="float64", **args)
    fast = bootstrap_ci(1e30 * x, 1e30 * y, "poly", True, **args)
    np.testing.assert_allclose(fast.distribution, exact.distribution, atol=TOL)
    monkeypatch.setattr(resampling, "FAST_TOLERANCE", float("inf"))          # float32 whatever the estimate
    unchecked = bootstrap_ci(1e30 * x, 1e30 * y, "poly", True, **args)
    assert np.abs(unchecked.distribution - exact.distribution).max() > TOL
