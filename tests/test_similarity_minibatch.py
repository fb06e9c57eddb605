"""Streaming CKA: unbiased HSIC summed over minibatches (Nguyen, Raghu & Kornblith 2021)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_similarity_reference import (  # noqa: F401
    FAST,
    ref_gram,
    ref_hsic_unbiased,
    related_pair,
    single_thread,
)

from taskscope.similarity import MinibatchCKA, cka


def ref_minibatch_cka(batches, kernel="linear"):
    """Definition: mean_b HSIC_u(K_b, L_b) / sqrt(mean_b HSIC_u(K_b, K_b) mean_b HSIC_u(L_b, L_b))."""
    kl, kk, ll = [], [], []
    for x, y in batches:
        k, l = ref_gram(x, kernel), ref_gram(y, kernel)
        kl.append(ref_hsic_unbiased(k, l))
        kk.append(ref_hsic_unbiased(k, k))
        ll.append(ref_hsic_unbiased(l, l))
    return np.mean(kl) / np.sqrt(np.mean(kk) * np.mean(ll))


def float64_tolerance(batches, kernel) -> float:
    """What float64 can promise: centring a large, nearly constant Gram matrix (the polynomial kernel on
    offset data) cancels most of its digits, so the error grows with ``(n max|K|)^2 / HSIC_u(K, K)``."""
    worst = 1.0
    for x, y in batches:
        for gram in (ref_gram(x, kernel), ref_gram(y, kernel)):
            worst = max(worst, (len(gram) * np.abs(gram).max()) ** 2 / ref_hsic_unbiased(gram, gram))
    return 1e-10 + 64 * np.finfo(np.float64).eps * worst


@FAST
@given(st.integers(4, 40), st.integers(1, 8), st.integers(1, 8), st.integers(0, 2**31 - 1),
       st.sampled_from(["linear", "rbf", "poly"]))
def test_one_full_batch_equals_full_unbiased_cka(n, d1, d2, seed, kernel):
    x, y = related_pair(seed, n, d1, d2)
    streaming = MinibatchCKA(kernel, precision="float64")
    streaming.update(x, y)
    assert streaming.compute() == pytest.approx(cka(x, y, kernel, debiased=True, precision="float64"), abs=1e-9)


@FAST
@given(st.lists(st.integers(4, 15), min_size=1, max_size=5), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.sampled_from(["linear", "poly"]))
def test_minibatch_mean_matches_the_definition(sizes, d, seed, kernel):
    x, y = related_pair(seed, sum(sizes), d, d + 1)
    bounds = np.cumsum([0, *sizes])
    batches = [(x[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    streaming = MinibatchCKA(kernel, precision="float64")
    for bx, by in batches:
        streaming.update(bx, by)
    assert streaming.batches == len(batches)
    expected = ref_minibatch_cka(batches, kernel)
    assert streaming.compute() == pytest.approx(expected, abs=float64_tolerance(batches, kernel))


def test_updates_add_and_never_overwrite():
    """Regression (ckatorch): an epoch that keeps only the last batch's HSIC."""
    x, y = related_pair(1, 60, 5, 6, noise=2.0)
    first, last = (x[:30], y[:30]), (x[30:], y[30:] * np.linspace(0.1, 3, 6))
    streaming = MinibatchCKA(precision="float64")
    streaming.update(*first)
    streaming.update(*last)
    only_last = MinibatchCKA(precision="float64")
    only_last.update(*last)
    both = ref_minibatch_cka([first, last])
    assert streaming.compute() == pytest.approx(both, abs=1e-12)
    assert abs(both - only_last.compute()) > 1e-3
    k, l = ref_gram(first[0]), ref_gram(first[1])
    k2, l2 = ref_gram(last[0]), ref_gram(last[1])
    assert streaming.hsic()[0] == pytest.approx((ref_hsic_unbiased(k, l) + ref_hsic_unbiased(k2, l2)) / 2, rel=1e-10)
    streaming.reset()
    with pytest.raises(RuntimeError, match="before any update"):
        streaming.compute()


def test_stacks_are_accumulated_per_position():
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(3, 40, 4)), rng.normal(size=(3, 40, 5))
    ys[..., :4] += xs
    streaming = MinibatchCKA()
    for start in range(0, 40, 10):
        streaming.update(xs[:, start:start + 10], ys[:, start:start + 10])
    expected = [ref_minibatch_cka([(xs[i, s:s + 10], ys[i, s:s + 10]) for s in range(0, 40, 10)]) for i in range(3)]
    np.testing.assert_allclose(streaming.compute(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="leading shape"):
        streaming.update(xs[:2, :10], ys[:2, :10])
