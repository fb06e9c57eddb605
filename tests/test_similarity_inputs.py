"""Bad input: clear errors, NaN-with-warning where undefined, and rows dropped from both sides together."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_similarity_reference import ref_cka, related_pair, single_thread  # noqa: F401

from taskscope.similarity import (
    MinibatchCKA,
    SimilarityWarning,
    bootstrap_ci,
    cka,
    cka_grid,
    similarity,
)


def test_different_row_counts_name_both_shapes():
    x, y = related_pair(0, 20, 3, 4)
    with pytest.raises(ValueError, match=r"X has 20 rows .* Y has 19"):
        cka(x, y[:19])


@pytest.mark.parametrize("debiased, n_ok", [(False, 2), (True, 4)])
def test_too_few_rows_for_the_estimator(debiased, n_ok):
    x, y = related_pair(1, n_ok, 3, 3)
    assert np.isfinite(cka(x, y, debiased=debiased))
    with pytest.raises(ValueError, match=f"at least {n_ok} inputs"):
        cka(x[: n_ok - 1], y[: n_ok - 1], debiased=debiased)
    with pytest.raises(ValueError, match="at least 4"):
        MinibatchCKA().update(x[:3], y[:3])


def test_unknown_kernel_measure_and_arguments():
    x, y = related_pair(2, 10, 3, 3)
    with pytest.raises(ValueError, match="unknown kernel 'cosine'"):
        cka(x, y, "cosine")
    with pytest.raises(TypeError, match="kernel 'rbf'"):
        cka(x, y, "rbf", bandwidth=2.0)
    with pytest.raises(ValueError, match="unknown measure"):
        similarity(x, y, "cca")
    with pytest.raises(ValueError, match="precision"):
        cka(x, y, precision="float16")


def test_non_finite_values_raise_by_default_naming_rows():
    x, y = related_pair(3, 12, 3, 3)
    y[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"Y contain NaN/inf in rows \[5\]"):
        cka(x, y)
    with pytest.raises(ValueError, match=r"Ys\[0\] contain NaN/inf"):
        cka_grid([x[None]], [y[None]])


def test_drop_rows_drops_the_same_rows_from_both_sides():
    """Regression (layer_by_layer): dropping each side's NaN rows separately misaligns the inputs."""
    x, y = related_pair(4, 30, 4, 5, noise=0.3)
    x[3, 0], y[17, 2], x[25, 1] = np.nan, np.inf, -np.inf
    keep = np.setdiff1d(np.arange(30), [3, 17, 25])
    with pytest.warns(SimilarityWarning, match="dropping 3 non-finite rows"):
        got = cka(x, y, nan_policy="drop_rows", precision="float64")
    assert got == pytest.approx(ref_cka(x[keep], y[keep]), abs=1e-12)
    separately = ref_cka(x[np.isfinite(x).all(1)][:27], y[np.isfinite(y).all(1)][:27])
    assert abs(got - separately) > 1e-3
    with pytest.warns(SimilarityWarning):
        grid = cka_grid([x[None]], [y[None]], nan_policy="drop_rows", precision="float64")
    assert grid[0, 0, 0] == pytest.approx(got, abs=1e-12)
    with pytest.warns(SimilarityWarning):
        boot = bootstrap_ci(x, y, n_resamples=5, nan_policy="drop_rows")
    assert boot.estimate == pytest.approx(got, abs=1e-6)


def test_drop_rows_in_a_stack_uses_rows_bad_at_any_position():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(2, 10, 3)), rng.normal(size=(2, 10, 3))
    x[1, 4, 0] = np.nan
    with pytest.warns(SimilarityWarning):
        got = cka(x, y, nan_policy="drop_rows", precision="float64")
    keep = np.arange(10) != 4
    np.testing.assert_allclose(got, [ref_cka(x[0, keep], y[0, keep]), ref_cka(x[1, keep], y[1, keep])], atol=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("precision", ["fast", "float64"])
def test_constant_representation_is_nan_with_a_warning(kernel, debiased, precision):
    x, _ = related_pair(6, 12, 3, 3)
    constant = np.full((12, 3), 0.1)          # 0.1 is not exact in binary: the mean is not exactly 0.1
    with pytest.warns(SimilarityWarning, match="constant"):
        assert np.isnan(cka(x, constant, kernel, debiased, precision=precision))
    with pytest.warns(SimilarityWarning):
        values = cka(np.stack([x, x]), np.stack([x, constant]), kernel, debiased, precision=precision)
    assert np.isfinite(values[0]) and np.isnan(values[1])


def test_rbf_with_mostly_duplicate_rows_is_nan_not_a_division_by_zero():
    x = np.zeros((6, 2))
    x[0] = [1.0, 2.0]                         # median distinct-pair distance is 0
    y, _ = related_pair(7, 6, 2, 2)
    with pytest.warns(SimilarityWarning):
        assert np.isnan(cka(x, y, "rbf"))
    assert np.isfinite(cka(x, y, "rbf", sigma=1.0))


def test_leading_shapes_must_broadcast_and_inputs_be_numeric():
    with pytest.raises(ValueError, match="do not broadcast"):
        cka(np.zeros((2, 5, 3)), np.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cka(np.zeros(5), np.zeros(5))
    with pytest.raises(TypeError, match="numeric"):
        cka(np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2)))


def test_integer_and_mixed_device_inputs_are_accepted():
    x = np.arange(40).reshape(10, 4) % 7
    y = torch.from_numpy((np.arange(30).reshape(10, 3) % 5).astype(np.float32))
    assert cka(x, y, precision="float64") == pytest.approx(ref_cka(x.astype(float), y.double().numpy()), abs=1e-12)
