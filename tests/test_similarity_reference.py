"""CKA against a plain float64 numpy implementation written here from the published formulas.

The reference functions below are independent of taskscope.similarity (explicit loops / textbook
matrix expressions) and are imported by the other test_similarity_* files.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.similarity import cka, hsic

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Small matrices: one torch thread (intra-op sync on a loaded 2-core machine costs 10-20x); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ reference (formulas only)
def ref_gram(x: np.ndarray, kernel: str = "linear", sigma_scale: float = 1.0, degree: int = 3,
             coef0: float = 1.0) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if kernel == "linear":
        # Centring the data first changes K only by row/column terms that both HSIC estimators cancel
        # exactly, and it avoids float64 cancellation when the mean dwarfs the spread.
        xc = x - x.mean(axis=0)
        return xc @ xc.T
    if kernel == "rbf":
        sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
        distinct = np.sqrt(sq[np.triu_indices(n, k=1)])
        sigma = sigma_scale * np.median(distinct)
        return np.exp(-sq / (2 * sigma**2))
    if kernel == "poly":
        return (x @ x.T / d + coef0) ** degree
    raise ValueError(kernel)


def ref_hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    """Gretton et al. 2005: tr(K H L H) / (n - 1)^2."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h) / (n - 1) ** 2)


def ref_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, eq. (5): zero diagonals, then the three-term U-statistic."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float((term1 + term2 - term3) / (n * (n - 3)))


def ref_cka(x: np.ndarray, y: np.ndarray, kernel: str = "linear", debiased: bool = False, **args) -> float:
    k, l = ref_gram(x, kernel, **args), ref_gram(y, kernel, **args)
    h = ref_hsic_unbiased if debiased else ref_hsic_biased
    return h(k, l) / np.sqrt(h(k, k) * h(l, l))


def related_pair(seed: int, n: int, d1: int, d2: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Y = X W + noise, with an offset mean and uneven column scales, like hidden states."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) * rng.uniform(0.2, 3.0, size=d1) + rng.normal(scale=5.0, size=d1)
    y = x @ rng.normal(size=(d1, d2)) + noise * rng.normal(size=(n, d2)) + 3.0
    return x, y


shapes = st.tuples(st.integers(6, 24), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))


# ------------------------------------------------------------------ tests
@FAST
@given(shapes, st.sampled_from(["linear", "rbf", "poly"]), st.booleans())
def test_cka_matches_float64_reference(shape, kernel, debiased):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, d1, d2)
    expected = ref_cka(x, y, kernel, debiased)
    assert cka(x, y, kernel, debiased, precision="float64") == pytest.approx(expected, abs=1e-10)
    assert cka(x, y, kernel, debiased) == pytest.approx(expected, abs=1e-5)


@FAST
@given(shapes, st.booleans())
def test_hsic_matches_reference(shape, debiased):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, d1, d2)
    k, l = ref_gram(x, "rbf"), ref_gram(y, "poly")
    expected = (ref_hsic_unbiased if debiased else ref_hsic_biased)(k, l)
    got = float(hsic(torch.from_numpy(k), torch.from_numpy(l), debiased))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_kernel_arguments_reach_the_kernel(kernel):
    x, y = related_pair(3, 30, 6, 5)
    args = {"linear": {}, "rbf": {"sigma_scale": 0.4}, "poly": {"degree": 2, "coef0": 0.5}}[kernel]
    assert cka(x, y, kernel, precision="float64", **args) == pytest.approx(ref_cka(x, y, kernel, **args), abs=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("debiased", [False, True])
def test_fast_precision_within_1e5_of_float64_for_low_precision_activations(dtype, kernel, debiased):
    """Hidden-state-like data (large offset, n=120, d=256) stored in a low-precision dtype:
    the fast path must agree with float64 on the same stored values to 1e-5."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(120, 64))
    x = torch.from_numpy(base @ rng.normal(size=(64, 256)) + rng.normal(scale=20, size=256)).to(dtype)
    y = torch.from_numpy(base @ rng.normal(size=(64, 256)) + rng.normal(size=(120, 256))).to(dtype)
    exact = ref_cka(x.double().numpy(), y.double().numpy(), kernel, debiased)
    assert abs(cka(x, y, kernel, debiased) - exact) <= 1e-5
    assert abs(cka(x, y, kernel, debiased, precision="float64") - exact) <= 1e-10


def test_rbf_median_over_distinct_pairs_not_the_zero_diagonal():
    """Regression (Kornblith demo): a median over all n^2 squared distances includes n zeros and
    shrinks sigma.  With n = 4 the two conventions differ a lot; ours follows the distinct-pair formula."""
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    y = np.array([[0.0], [2.0], [2.5], [9.0]])
    ours = cka(x, y, "rbf", precision="float64")
    assert ours == pytest.approx(ref_cka(x, y, "rbf"), abs=1e-12)
    sq = (x - x.T) ** 2
    sq_y = (y - y.T) ** 2
    k_diag = np.exp(-sq / (2 * np.median(sq)))
    l_diag = np.exp(-sq_y / (2 * np.median(sq_y)))
    with_diagonal = ref_hsic_biased(k_diag, l_diag) / np.sqrt(ref_hsic_biased(k_diag, k_diag) * ref_hsic_biased(l_diag, l_diag))
    assert abs(ours - with_diagonal) > 1e-3


def test_debiased_normalises_each_side_by_its_own_hsic_with_square_root():
    """Regression (anatome): HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)), not HSIC_u(K, L) divided by
    the other side's self-HSIC without the square root."""
    x, y = related_pair(11, 40, 5, 9)
    y = 10.0 * y
    k, l = x @ x.T, y @ y.T
    right = ref_hsic_unbiased(k, l) / np.sqrt(ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l, l))
    wrong = ref_hsic_unbiased(k, l) / (ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l, l))
    got = cka(x, y, debiased=True, precision="float64")
    assert got == pytest.approx(right, abs=1e-12)
    assert abs(got - wrong) > 1e-3
    assert cka(x, y, debiased=True) == pytest.approx(cka(y, x, debiased=True), abs=1e-12)
