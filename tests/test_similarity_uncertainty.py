"""Bootstrap intervals and permutation tests, checked against explicit loops over resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from test_similarity_reference import ref_cka, ref_hsic_unbiased, related_pair, single_thread  # noqa: F401

from taskscope.similarity import bootstrap_ci, cka, paired_difference, permutation_test


def expected_interval(estimate, loo, dist, confidence=0.95):
    """Jackknife-centred percentile interval written out (docs/similarity.md)."""
    n, loo, dist = len(loo), np.asarray(loo), np.asarray(dist)
    centre = n * estimate - (n - 1) * loo.mean()
    se = np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    low_q, high_q = np.quantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2])
    scale = se / dist.std()
    return (np.clip(centre + (low_q - dist.mean()) * scale, -1, 1),
            np.clip(centre + (high_q - dist.mean()) * scale, -1, 1), centre)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "poly"])
def test_bootstrap_equals_cka_on_explicitly_resampled_rows_and_the_written_out_interval(kernel, debiased):
    x, y = related_pair(0, 25, 4, 6, noise=2.0)
    result = bootstrap_ci(x, y, kernel, debiased, n_resamples=30, seed=9, precision="float64")
    indices = np.random.default_rng(9).integers(0, 25, size=(30, 25))
    # the interval is built from the debiased estimator whichever estimate is reported
    expected = [ref_cka(x[i], y[i], kernel, True) for i in indices]   # duplicates kept (plug-in bootstrap)
    np.testing.assert_allclose(result.distribution, expected, atol=1e-10)
    loo = [ref_cka(np.delete(x, i, 0), np.delete(y, i, 0), kernel, True) for i in range(25)]
    low, high, centre = expected_interval(ref_cka(x, y, kernel, True), loo, expected)
    assert result.low == pytest.approx(low, abs=1e-10) and result.high == pytest.approx(high, abs=1e-10)
    assert result.bias_corrected == pytest.approx(centre, abs=1e-10)
    assert result.estimate == pytest.approx(ref_cka(x, y, kernel, debiased), abs=1e-10)


def test_normal_interval_is_the_jackknife_normal_interval_written_out():
    """``interval="normal"``: ``bias_corrected -/+ z se_jack`` of the debiased CKA, no resamples drawn; the paired
    difference's the same from the paired leave-one-out differences."""
    x, y = related_pair(3, 25, 4, 6, noise=2.0)
    worse = x + 2.0 * np.random.default_rng(2).normal(size=x.shape)
    result = bootstrap_ci(x, y, n_resamples=0, interval="normal", confidence=0.9, precision="float64")
    z = 1.6448536269514722
    n = 25

    def jackknife(values, full):
        values = np.asarray(values)
        centre = n * full - (n - 1) * values.mean()
        se = np.sqrt((n - 1) / n * np.sum((values - values.mean()) ** 2))
        return centre - z * se, centre + z * se, centre

    loo = [ref_cka(np.delete(x, i, 0), np.delete(y, i, 0), "linear", True) for i in range(n)]
    low, high, centre = jackknife(loo, ref_cka(x, y, "linear", True))
    assert (result.low, result.high, result.bias_corrected) == pytest.approx((low, high, centre), abs=1e-10)
    assert result.estimate == pytest.approx(ref_cka(x, y), abs=1e-10) and result.distribution.shape == (0,)
    assert result.method.startswith("jackknife bias-corrected normal")
    diff = paired_difference(x, worse, y, n_resamples=0, n_permutations=0, interval="normal", confidence=0.9,
                             precision="float64")
    loo_worse = [ref_cka(np.delete(worse, i, 0), np.delete(y, i, 0), "linear", True) for i in range(n)]
    expected = jackknife(np.subtract(loo, loo_worse), ref_cka(x, y, "linear", True) - ref_cka(worse, y, "linear", True))
    assert (diff.low, diff.high, diff.bias_corrected) == pytest.approx(expected, abs=1e-10)
    with pytest.raises(ValueError, match="interval must be one of"):
        bootstrap_ci(x, y, interval="bca")


def ref_cka_of_grams(k: np.ndarray, l: np.ndarray) -> float:
    return ref_hsic_unbiased(k, l) / np.sqrt(ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l, l))


def test_rbf_bootstrap_keeps_the_full_sample_bandwidth():
    x, y = related_pair(1, 20, 3, 5, noise=2.0)
    result = bootstrap_ci(x, y, "rbf", n_resamples=10, seed=4, precision="float64")

    def median_distance(a):
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        return np.median(d[np.triu_indices(len(a), 1)])

    sx, sy = median_distance(x), median_distance(y)
    for value, i in zip(result.distribution, np.random.default_rng(4).integers(0, 20, size=(10, 20))):
        kx = np.exp(-((x[i][:, None] - x[i][None]) ** 2).sum(-1) / (2 * sx ** 2))
        ky = np.exp(-((y[i][:, None] - y[i][None]) ** 2).sum(-1) / (2 * sy ** 2))
        assert value == pytest.approx(ref_cka_of_grams(kx, ky), abs=1e-10)   # the interval's debiased CKA


def test_bootstrap_is_seeded_and_brackets_the_bias_corrected_estimate():
    x, y = related_pair(2, 60, 5, 5, noise=3.0)
    a = bootstrap_ci(x, y, n_resamples=200, seed=1)
    b = bootstrap_ci(x, y, n_resamples=200, seed=1)
    c = bootstrap_ci(x, y, n_resamples=200, seed=2)
    np.testing.assert_array_equal(a.distribution, b.distribution)
    assert not np.array_equal(a.distribution, c.distribution)
    assert a.low < a.bias_corrected < a.high
    narrow = bootstrap_ci(x, y, n_resamples=200, seed=1, confidence=0.5)
    assert a.low < narrow.low < narrow.high < a.high


def test_bootstrap_of_a_stack_uses_the_same_resamples_at_every_layer():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(3, 20, 4))
    ys = xs @ rng.normal(size=(4, 4)) + rng.normal(size=(3, 20, 4))
    stacked = bootstrap_ci(xs, ys, n_resamples=15, seed=7)
    assert stacked.distribution.shape == (15, 3) and stacked.low.shape == (3,)
    for layer in range(3):
        single = bootstrap_ci(xs[layer], ys[layer], n_resamples=15, seed=7)
        np.testing.assert_allclose(stacked.distribution[:, layer], single.distribution, atol=1e-12)


def test_permutation_null_equals_cka_with_permuted_rows():
    x, y = related_pair(4, 15, 3, 4, noise=5.0)
    result = permutation_test(x, y, n_permutations=25, seed=3, precision="float64")
    rng = np.random.default_rng(3)
    expected = [ref_cka(x, y[rng.permutation(15)]) for _ in range(25)]
    np.testing.assert_allclose(result.null_distribution, expected, atol=1e-10)
    exceed = np.sum(np.array(expected) >= result.statistic - 1e-12)
    assert result.p_value == pytest.approx((1 + exceed) / 26)


def test_permutation_p_value_separates_related_from_unrelated():
    x, y = related_pair(5, 40, 4, 4, noise=0.5)
    related = permutation_test(x, y, "rbf", n_permutations=99, seed=0)
    assert related.p_value == pytest.approx(1 / 100)          # never 0, +1 correction
    unrelated = np.random.default_rng(6).normal(size=(40, 4))
    p_values = [permutation_test(x, unrelated[np.random.default_rng(s).permutation(40)], n_permutations=99,
                                 seed=s).p_value for s in range(20)]
    assert np.mean(np.array(p_values) < 0.05) <= 0.2 and np.median(p_values) > 0.2
    assert permutation_test(x, y, n_permutations=10).statistic == pytest.approx(cka(x, y), abs=1e-6)


def test_paired_difference_matches_two_intervals_on_the_same_resamples():
    x, y = related_pair(8, 30, 4, 4, noise=1.0)
    worse = x + 2.0 * np.random.default_rng(1).normal(size=x.shape)
    diff = paired_difference(x, worse, y, n_resamples=40, n_permutations=0, seed=5, precision="float64")
    a = bootstrap_ci(x, y, n_resamples=40, seed=5, precision="float64")
    b = bootstrap_ci(worse, y, n_resamples=40, seed=5, precision="float64")
    np.testing.assert_allclose(diff.distribution, a.distribution - b.distribution, atol=1e-12)
    assert diff.estimate == pytest.approx(a.estimate - b.estimate, abs=1e-12)
    assert diff.bias_corrected == pytest.approx(a.bias_corrected - b.bias_corrected, abs=1e-10)
    assert diff.low < diff.bias_corrected < diff.high and np.isnan(diff.p_value)


def test_paired_permutation_null_swaps_the_models_input_by_input():
    x, y = related_pair(9, 16, 3, 3, noise=1.0)
    other = x + np.random.default_rng(2).normal(size=x.shape)
    result = paired_difference(x, other, y, n_resamples=0, n_permutations=30, seed=6, precision="float64")
    swaps = np.random.default_rng([6, 1]).integers(0, 2, size=(30, 16)).astype(bool)
    pooled = np.concatenate([x, other])
    expected = []
    for s in swaps:
        a = np.where(s[:, None], other, x)
        b = np.where(s[:, None], x, other)
        expected.append(ref_cka(a, y) - ref_cka(b, y))
    np.testing.assert_allclose(result.null_distribution, expected, atol=1e-10)
    observed = ref_cka(x, y) - ref_cka(other, y)
    assert result.p_value == pytest.approx((1 + np.sum(np.abs(expected) >= abs(observed) - 1e-12)) / 31)
    assert np.isnan(result.low) and pooled.shape == (32, 3)
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(x, other[:, :2], y, n_resamples=0, n_permutations=5)


def test_invalid_resampling_arguments():
    x, y = related_pair(7, 10, 2, 2)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(x, y, confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(x, y, n_resamples=0)
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_test(x, y, n_permutations=0)
