"""Property-based tests of CKA: identities, invariances, symmetry, and equal results across code paths."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ortho_group
from test_similarity_reference import FAST, ref_cka, related_pair, single_thread  # noqa: F401

from taskscope.similarity import cka, cka_grid

shapes = st.tuples(st.integers(8, 30), st.integers(2, 10), st.integers(2, 10), st.integers(0, 2**31 - 1))
kernels = st.sampled_from(["linear", "rbf", "poly"])


@FAST
@given(shapes, kernels, st.booleans())
def test_cka_of_a_representation_with_itself_is_one(shape, kernel, debiased):
    n, d, _, seed = shape
    x, _ = related_pair(seed, n, d, 2)
    assert cka(x, x, kernel, debiased) == pytest.approx(1.0, abs=1e-6)


@FAST
@given(shapes, st.sampled_from(["linear", "rbf"]), st.booleans(), st.floats(0.01, 100.0))
def test_invariant_to_isotropic_scaling_and_orthogonal_maps_of_either_side(shape, kernel, debiased, scale):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, d1, d2)
    q1 = ortho_group.rvs(d1, random_state=seed) if d1 > 1 else np.ones((1, 1))
    q2 = ortho_group.rvs(d2, random_state=seed + 1) if d2 > 1 else np.ones((1, 1))
    base = cka(x, y, kernel, debiased, precision="float64")
    assert cka(scale * x @ q1, y, kernel, debiased, precision="float64") == pytest.approx(base, abs=1e-9)
    assert cka(x, y @ q2 / scale, kernel, debiased, precision="float64") == pytest.approx(base, abs=1e-9)


@FAST
@given(shapes)
def test_linear_cka_is_not_invariant_to_arbitrary_invertible_maps(shape):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, max(d1, 3), d2)
    d = x.shape[1]
    stretch = np.eye(d)
    stretch[0, 0] = 50.0                        # invertible, far from orthogonal
    base = cka(x, y, precision="float64")
    stretched = cka(x @ stretch, y, precision="float64")
    assert abs(stretched - ref_cka(x @ stretch, y)) < 1e-9
    assert abs(stretched - base) > 1e-6


@FAST
@given(shapes, kernels, st.booleans())
def test_symmetric(shape, kernel, debiased):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, d1, d2)
    exact = {"precision": "float64"}
    assert cka(x, y, kernel, debiased, **exact) == pytest.approx(cka(y, x, kernel, debiased, **exact), abs=1e-12)
    assert cka(x, y, kernel, debiased) == pytest.approx(cka(y, x, kernel, debiased), abs=1e-7)  # float32 products


@FAST
@given(shapes, st.sampled_from(["fast", "float64"]))
def test_feature_space_equals_gram_space(shape, precision):
    n, d1, d2, seed = shape
    x, y = related_pair(seed, n, d1, d2)
    tol = 1e-6 if precision == "fast" else 1e-12
    gram = cka(x, y, space="gram", precision=precision)
    assert cka(x, y, space="feature", precision=precision) == pytest.approx(gram, abs=tol)
    assert cka(x, y, space="auto", precision=precision) == pytest.approx(gram, abs=tol)


@FAST
@given(st.integers(1, 3), st.integers(1, 3), shapes, kernels, st.booleans())
def test_batched_equals_looped(a, b, shape, kernel, debiased):
    n, d1, d2, seed = shape
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(a, b, n, d1))
    ys = xs @ rng.normal(size=(d1, d2)) + rng.normal(size=(a, b, n, d2))
    exact = {"precision": "float64"}
    batched = cka(torch.from_numpy(xs), torch.from_numpy(ys), kernel, debiased, **exact)
    looped = np.array([[cka(xs[i, j], ys[i, j], kernel, debiased, **exact) for j in range(b)] for i in range(a)])
    assert batched.shape == (a, b)
    np.testing.assert_allclose(batched, looped, atol=1e-12)
    # fast mode: batched and 2-D float32 products may round differently
    np.testing.assert_allclose(cka(xs, ys, kernel, debiased), looped, atol=1e-6)


@FAST
@given(st.integers(1, 3), st.integers(1, 2), st.integers(1, 4), shapes, kernels, st.booleans())
def test_grid_and_broadcast_equal_looped_pairs(models_x, models_y, layers, shape, kernel, debiased):
    n, d1, d2, seed = shape
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(layers, n, d1)) for _ in range(models_x)]
    ys = [rng.normal(size=(layers, n, d2)) + xs[0][..., :1] for _ in range(models_y)]
    exact = {"precision": "float64"}  # a 2-D linear pair may take the feature space: compare exactly
    looped = np.array([[[cka(x[l], y[l], kernel, debiased, **exact) for l in range(layers)] for y in ys] for x in xs])
    np.testing.assert_allclose(cka_grid(xs, ys, kernel, debiased, **exact), looped, atol=1e-10)
    broadcast = cka(np.stack(xs)[:, None], np.stack(ys)[None], kernel, debiased, **exact)
    np.testing.assert_allclose(broadcast, looped, atol=1e-10)
    np.testing.assert_allclose(cka_grid(xs, ys, kernel, debiased), looped, atol=1e-6)


def test_grid_chunks_give_the_same_values(monkeypatch):
    """Tiny chunk budget -> one leading position per chunk; values must not depend on chunking."""
    cka_module = importlib.import_module("taskscope.similarity.cka")  # the package attribute is the function

    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(2, 5, 12, 4)), rng.normal(size=(3, 5, 12, 6))
    whole = cka_grid(xs, ys, "rbf")
    same_shape = cka(xs[0], ys[0], "poly")
    monkeypatch.setattr(cka_module, "CHUNK_BYTES", 1)
    np.testing.assert_allclose(cka_grid(xs, ys, "rbf"), whole, atol=1e-14)
    np.testing.assert_allclose(cka(xs[0], ys[0], "poly"), same_shape, atol=1e-14)


def test_torch_input_keeps_values_and_returns_numpy():
    x, y = related_pair(2, 20, 4, 3)
    stack_x, stack_y = torch.from_numpy(np.stack([x, x])), torch.from_numpy(np.stack([y, 2 * y]))
    out = cka(stack_x, stack_y)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert isinstance(cka(x, y), float)
    np.testing.assert_allclose(out, [cka(x, y)] * 2, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x, y = related_pair(4, 64, 16, 8)
    gpu = cka(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), "rbf", True)
    assert gpu == pytest.approx(cka(x, y, "rbf", True), abs=1e-6)


@pytest.mark.parametrize("n", [7, 47, 48, 50, 100, 201, 1000])
def test_symmetric_gram_is_the_full_product(n):
    """The blocked symmetric product (every block against the rows from its start on, mirrored) against one
    float64 product, for block counts 1 (n < 48), 2, 4 and 8 with uneven last blocks."""
    from taskscope.similarity.kernels import gram_block_edges, symmetric_gram

    edges = gram_block_edges(n)
    assert edges[0] == 0 and edges[-1] == n and all(a < b for a, b in zip(edges, edges[1:]))
    assert len(edges) - 1 == max(1, min(8, n // 24))

    x = torch.randn(3, n, 17, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    gram = symmetric_gram(x)
    torch.testing.assert_close(gram, x @ x.mT, rtol=0, atol=1e-12)
    torch.testing.assert_close(gram, gram.mT, rtol=0, atol=1e-12)
