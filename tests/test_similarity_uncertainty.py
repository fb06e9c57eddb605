"""Bootstrap intervals and permutation tests, checked against explicit loops over resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from test_similarity_reference import ref_cka, related_pair, single_thread  # noqa: F401

from taskscope.similarity import bootstrap_ci, cka, permutation_test


@pytest.mark.parametrize("kernel", ["linear", "poly"])
def test_biased_bootstrap_equals_cka_on_explicitly_resampled_rows(kernel):
    x, y = related_pair(0, 25, 4, 6, noise=2.0)
    result = bootstrap_ci(x, y, kernel, n_resamples=30, seed=9, precision="float64")
    indices = np.random.default_rng(9).integers(0, 25, size=(30, 25))
    expected = [ref_cka(x[i], y[i], kernel) for i in indices]
    np.testing.assert_allclose(result.distribution, expected, atol=1e-10)
    low, high = np.quantile(expected, [0.025, 0.975])
    assert result.low == pytest.approx(low, abs=1e-10) and result.high == pytest.approx(high, abs=1e-10)
    assert result.estimate == pytest.approx(ref_cka(x, y, kernel), abs=1e-10)


def test_debiased_bootstrap_uses_the_distinct_rows_of_each_resample():
    x, y = related_pair(1, 20, 3, 5, noise=2.0)
    result = bootstrap_ci(x, y, debiased=True, n_resamples=20, seed=4, precision="float64")
    indices = np.random.default_rng(4).integers(0, 20, size=(20, 20))
    expected = [ref_cka(x[np.unique(i)], y[np.unique(i)], debiased=True) for i in indices]
    np.testing.assert_allclose(result.distribution, expected, atol=1e-10)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    x, y = related_pair(2, 60, 5, 5, noise=3.0)
    a = bootstrap_ci(x, y, n_resamples=200, seed=1)
    b = bootstrap_ci(x, y, n_resamples=200, seed=1)
    c = bootstrap_ci(x, y, n_resamples=200, seed=2)
    np.testing.assert_array_equal(a.distribution, b.distribution)
    assert not np.array_equal(a.distribution, c.distribution)
    assert a.low < a.estimate < a.high
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


def test_invalid_resampling_arguments():
    x, y = related_pair(7, 10, 2, 2)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(x, y, confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(x, y, n_resamples=0)
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_test(x, y, n_permutations=0)
