"""Companion measures behind similarity(X, Y, measure=...), each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, spearmanr
from test_similarity_reference import FAST, related_pair, single_thread  # noqa: F401

from taskscope.similarity import MEASURES, SimilarityWarning, cka, similarity


def inv_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return v @ np.diag(w**-0.5) @ v.T


def ref_cca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations and unit-norm X-side canonical variates from covariance whitening."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    wx, wy = inv_sqrt(xc.T @ xc), inv_sqrt(yc.T @ yc)
    u, rho, _ = np.linalg.svd(wx @ xc.T @ yc @ wy)
    k = min(x.shape[1], y.shape[1])
    h = xc @ wx @ u[:, :k]
    return rho[:k], h / np.linalg.norm(h, axis=0)


def test_registry_holds_the_design_ids():
    assert {"cka", "procrustes", "svcca", "pwcca", "rsa", "mutual_knn"} <= set(MEASURES)


@FAST
@given(st.integers(10, 30), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_procrustes_matches_scipy_orthogonal_procrustes(n, d, seed):
    x, y = related_pair(seed, n, d, d, noise=1.0)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    rotation, _ = orthogonal_procrustes(yc, xc)
    expected = np.linalg.norm(xc - yc @ rotation) ** 2
    assert similarity(x, y, "procrustes") == pytest.approx(expected, abs=1e-9)
    q = ortho_group.rvs(d, random_state=seed)
    assert similarity(x, 3.0 * x @ q + 1.0, "procrustes") == pytest.approx(0.0, abs=1e-9)
    assert similarity(x, 3.0 * x @ q, "procrustes", angular=True) == pytest.approx(0.0, abs=1e-6)


@FAST
@given(st.integers(20, 40), st.integers(2, 5), st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_svcca_and_pwcca_match_whitened_cca(n, d1, d2, seed):
    x, y = related_pair(seed, n, d1, d2, noise=2.0)
    rho, h = ref_cca(x, y)
    assert similarity(x, y, "svcca", variance_kept=1.0) == pytest.approx(rho.mean(), abs=1e-8)
    alpha = np.abs(h.T @ (x - x.mean(0))).sum(axis=1)
    assert similarity(x, y, "pwcca") == pytest.approx((alpha / alpha.sum() * rho).sum(), abs=1e-8)


def test_cca_measures_are_invariant_to_invertible_maps_where_cka_is_not():
    x, _ = related_pair(3, 50, 4, 4)
    stretch = np.diag([50.0, 1.0, 0.2, 3.0]) @ ortho_group.rvs(4, random_state=1)
    y = x @ stretch
    assert similarity(x, y, "svcca", variance_kept=1.0) == pytest.approx(1.0, abs=1e-9)
    assert similarity(x, y, "pwcca") == pytest.approx(1.0, abs=1e-9)
    assert cka(x, y) < 0.99


def test_svcca_variance_kept_truncates_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)) * np.array([10, 8, 6, 0.01, 0.01, 0.01])
    y = 100.0 * x[:, 3:]                      # Y lives in X's three low-variance directions
    assert similarity(x, y, "svcca", variance_kept=1.0) == pytest.approx(1.0, abs=1e-8)
    assert similarity(x, y, "svcca", variance_kept=0.99) < 0.5
    with pytest.warns(SimilarityWarning, match="trivially 1"):
        similarity(rng.normal(size=(5, 8)), rng.normal(size=(5, 8)), "pwcca")


@pytest.mark.parametrize("metric, scipy_metric", [("correlation", "correlation"), ("euclidean", "euclidean")])
def test_rsa_is_spearman_of_pdist(metric, scipy_metric):
    x, y = related_pair(4, 25, 5, 7, noise=3.0)
    expected = spearmanr(pdist(x, scipy_metric), pdist(y, scipy_metric)).statistic
    assert similarity(x, y, "rsa", metric=metric) == pytest.approx(expected, abs=1e-10)
    assert similarity(x, 4.0 * x, "rsa", metric=metric) == pytest.approx(1.0)


def test_mutual_knn_matches_a_brute_force_loop():
    x, y = related_pair(5, 30, 6, 6, noise=2.0)

    def knn(a: np.ndarray, i: int, k: int) -> set[int]:
        unit = a / np.linalg.norm(a, axis=1, keepdims=True)
        sims = unit @ unit[i]
        order = [j for j in np.argsort(-sims, kind="stable") if j != i]
        return set(order[:k])

    expected = np.mean([len(knn(x, i, 5) & knn(y, i, 5)) / 5 for i in range(30)])
    assert similarity(x, y, "mutual_knn", k=5) == pytest.approx(expected)
    assert similarity(x, 2.0 * x, "mutual_knn", k=5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="more than k"):
        similarity(x[:5], y[:5], "mutual_knn", k=5)


def test_measures_loop_over_stacks_and_cka_passes_through():
    rng = np.random.default_rng(6)
    xs, ys = rng.normal(size=(3, 20, 4)), rng.normal(size=(3, 20, 5))
    for name in ("procrustes", "rsa", "mutual_knn", "svcca"):
        stacked = similarity(xs, ys, name)
        assert stacked.shape == (3,)
        np.testing.assert_allclose(stacked, [similarity(xs[i], ys[i], name) for i in range(3)], atol=1e-12)
    assert similarity(xs, ys, "cka", kernel="rbf", debiased=True) == pytest.approx(cka(xs, ys, "rbf", True))


@pytest.mark.parametrize("name", ["procrustes", "svcca", "pwcca", "rsa", "mutual_knn"])
def test_constant_side_is_nan_with_a_warning(name):
    x, _ = related_pair(7, 20, 3, 3)
    with pytest.warns(SimilarityWarning, match="constant"):
        assert np.isnan(similarity(x, np.full((20, 3), 0.3), name))
