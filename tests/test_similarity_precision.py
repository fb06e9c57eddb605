"""precision="fast" on data with huge offsets and extreme magnitudes, against an mpmath reference (300 digits).

The reference below is written from the formulas on the exact binary values of the float64 inputs,
in 300-digit arithmetic (the unbiased HSIC of a poly kernel at 1e-30 cancels ~130 digits), so it is right whatever the offset or magnitude (the polynomial kernel at a
1e8 offset or at 1e-30 needs far more than float64's 16 digits when evaluated directly).
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import torch

from taskscope.similarity import (
    MinibatchCKA,
    SimilarityWarning,
    bootstrap_ci,
    cka,
    cka_grid,
    paired_difference,
    permutation_test,
)

mpmath.mp.dps = 300
N, D = 14, 3
TOL = 1e-6


def mp_gram(x: np.ndarray, kernel: str, sigma: mpmath.mpf | None = None) -> list[list[mpmath.mpf]]:
    rows = [[mpmath.mpf(float(v)) for v in r] for r in x]
    n, d = len(rows), len(rows[0])
    dot = lambda a, b: mpmath.fsum(p * q for p, q in zip(a, b))
    if kernel == "linear":
        return [[dot(a, b) for b in rows] for a in rows]
    if kernel == "poly":
        return [[(dot(a, b) / d + 1) ** 3 for b in rows] for a in rows]
    sq = [[mpmath.fsum((p - q) ** 2 for p, q in zip(a, b)) for b in rows] for a in rows]
    if sigma is None:
        distances = sorted(mpmath.sqrt(sq[i][j]) for i in range(n) for j in range(i + 1, n))
        m = len(distances)
        sigma = (distances[(m - 1) // 2] + distances[m // 2]) / 2
    return [[mpmath.exp(-sq[i][j] / (2 * sigma ** 2)) for j in range(n)] for i in range(n)]


def mp_hsic(k, l, debiased: bool) -> mpmath.mpf:
    n = len(k)
    if not debiased:   # tr(K H L H) with explicit double centring
        def centred(g):
            r = [mpmath.fsum(row) / n for row in g]
            t = mpmath.fsum(r) / n
            return [[g[i][j] - r[i] - r[j] + t for j in range(n)] for i in range(n)]
        kc, lc = centred(k), centred(l)
        return mpmath.fsum(kc[i][j] * lc[i][j] for i in range(n) for j in range(n))
    kt = [[k[i][j] if i != j else 0 for j in range(n)] for i in range(n)]   # Song et al. 2012
    lt = [[l[i][j] if i != j else 0 for j in range(n)] for i in range(n)]
    term1 = mpmath.fsum(kt[i][j] * lt[j][i] for i in range(n) for j in range(n))
    sk, sl = mpmath.fsum(map(mpmath.fsum, kt)), mpmath.fsum(map(mpmath.fsum, lt))
    rk, rl = [mpmath.fsum(r) for r in kt], [mpmath.fsum(r) for r in lt]
    term3 = mpmath.fsum(rk[i] * rl[i] for i in range(n))
    return term1 + sk * sl / ((n - 1) * (n - 2)) - 2 * term3 / (n - 2)


def mp_cka(x, y, kernel: str, debiased: bool) -> float:
    k, l = mp_gram(x, kernel), mp_gram(y, kernel)
    return float(mp_hsic(k, l, debiased) / mpmath.sqrt(mp_hsic(k, k, debiased) * mp_hsic(l, l, debiased)))


def data(case: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Related pair (spread ~1) moved by ``case``: a common offset of 1e4 / 1e8 x the spread, or a magnitude."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    y = x @ rng.normal(size=(D, D)) + rng.normal(size=(N, D))
    kind, value = case.split("=")
    value = float(value)
    if kind == "offset":
        return x + value * rng.uniform(1, 2, size=D), y - value * rng.uniform(1, 2, size=D)
    if kind == "mixed":          # one side tiny, the other huge
        return x * value, y / value
    return x * value, y * value


CASES = ["offset=1e4", "offset=1e8", "scale=1e-30", "scale=1e-22", "scale=1e-23", "scale=1e19", "scale=1e30",
         "mixed=1e-30"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_fast_cka_and_grid_match_the_high_precision_reference(kernel, debiased, case):
    x, y = data(case)
    expected = mp_cka(x, y, kernel, debiased)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimilarityWarning)      # nothing here is constant
        assert cka(x, y, kernel, debiased) == pytest.approx(expected, abs=TOL)
        assert cka(x, y, kernel, debiased, precision="float64") == pytest.approx(expected, abs=TOL)
        grid = cka_grid([x, 2 * x], [y], kernel, debiased)
        assert grid[:, 0] == pytest.approx([expected, expected if kernel != "poly" else grid[1, 0]], abs=TOL)
        stacked = cka(np.stack([x, x]), np.stack([y, y]), kernel, debiased)   # the chunked stack path
        assert stacked == pytest.approx([expected, expected], abs=TOL)
        if kernel == "linear" and not debiased:
            assert cka(x, y, space="feature") == pytest.approx(expected, abs=TOL)
            assert cka(x, y, space="gram") == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("case", ["offset=1e8", "scale=1e-30", "scale=1e30", "mixed=1e-30"])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_minibatch_matches_the_reference_mean_of_unbiased_hsic(kernel, case):
    x, y = data(case, seed=1)
    halves = [slice(0, 7), slice(7, 14)]
    sums = [mpmath.mpf(0)] * 3
    for h in halves:
        k, l = mp_gram(x[h], kernel), mp_gram(y[h], kernel)
        sums = [s + v for s, v in zip(sums, (mp_hsic(k, l, True), mp_hsic(k, k, True), mp_hsic(l, l, True)))]
    expected = float(sums[0] / mpmath.sqrt(sums[1] * sums[2]))
    mb = MinibatchCKA(kernel)
    for h in halves:
        mb.update(x[h], y[h])
    assert mb.compute() == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("case", ["offset=1e8", "scale=1e-30", "scale=1e30", "mixed=1e-30"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_bootstrap_permutation_and_difference_in_fast_mode_match_float64_mode(kernel, debiased, case):
    """Resampling paths: the estimate against the reference, the resampled values against float64 mode
    (and, for the translation- and scale-free linear and RBF kernels, against the unmoved data)."""
    x, y = data(case, seed=2)
    expected = mp_cka(x, y, kernel, debiased)
    fast = bootstrap_ci(x, y, kernel, debiased, n_resamples=20, seed=3)
    exact = bootstrap_ci(x, y, kernel, debiased, n_resamples=20, seed=3, precision="float64")
    assert fast.estimate == pytest.approx(expected, abs=TOL)
    np.testing.assert_allclose(fast.distribution, exact.distribution, atol=TOL)
    assert (fast.low, fast.high) == pytest.approx((exact.low, exact.high), abs=TOL)
    if kernel != "poly":
        clean = bootstrap_ci(*data("scale=1", seed=2), kernel, debiased, n_resamples=20, seed=3, precision="float64")
        np.testing.assert_allclose(fast.distribution, clean.distribution, atol=TOL)
    perm = permutation_test(x, y, kernel, debiased, n_permutations=20, seed=4)
    assert perm.statistic == pytest.approx(expected, abs=TOL)
    np.testing.assert_allclose(perm.null_distribution,
                               permutation_test(x, y, kernel, debiased, n_permutations=20, seed=4,
                                                precision="float64").null_distribution, atol=TOL)
    diff = paired_difference(x, -2 * x, y, kernel, debiased, n_resamples=10, n_permutations=10, seed=5)
    assert np.isfinite(diff.estimate) and np.isfinite(diff.low) and np.isfinite(diff.p_value)


@pytest.mark.parametrize("value", [1e-30, 1.0, 1e8, 1e30])
def test_truly_constant_inputs_and_only_those_give_nan_with_a_warning(value):
    x, y = data("scale=1")
    constant = np.full((N, D), value)
    with pytest.warns(SimilarityWarning, match="constant"):
        assert np.isnan(cka(constant, y))
    with pytest.warns(SimilarityWarning, match="constant"):
        assert np.isnan(cka(constant, y, "rbf", True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimilarityWarning)
        nearly = constant.copy()
        nearly[0, 0] += value * 1e-8 if value else 1e-8        # one input moved by 1e-8 of the offset
        assert np.isfinite(cka(nearly, y))


def test_tiny_model_states_with_a_planted_massive_activation():
    """Hidden states of two tiny random LMs, with an LLM-like massive activation planted: one dimension
    offset by 1e4-1e6 x the spread and one dominating dimension x1e5.  Fast mode matches the reference."""
    from taskscope.models.tiny import tiny_model
    from taskscope.represent import extract_hidden_states

    prompts = [f"example number {i} says {'yes' if i % 3 else 'no'}" for i in range(N)]
    sides = []
    for seed in (0, 1):
        loaded = tiny_model("llama", n_layers=2, hidden_size=16, seed=seed)
        states = extract_hidden_states(loaded.model, loaded.tokenizer, prompts, progress=False).to(torch.float64)
        states[..., 0] += torch.logspace(4, 6, states.shape[0], dtype=torch.float64)[:, None]
        states[..., 1 + seed] *= 1e5
        sides.append(states)                                              # (L+1, n, d)
    exp, ctrl = sides
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimilarityWarning)
        fast = {k: cka(exp[1:], ctrl[1:], k) for k in ("linear", "rbf", "poly")}
        grid = cka_grid([exp[1:]], [ctrl[1:]])
    for kernel, values in fast.items():
        for i, layer in enumerate(range(1, exp.shape[0])):
            expected = mp_cka(exp[layer].numpy(), ctrl[layer].numpy(), kernel, False)
            assert values[i] == pytest.approx(expected, abs=TOL), (kernel, layer)
    np.testing.assert_allclose(grid[0, 0], fast["linear"], atol=TOL)
