"""MOSSA tables against an independent float64 CKA written from the formulas, on activations with planted structure."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.analysis.mossa import (
    MOSSA_COLUMNS,
    bootstrap_curves,
    cluster_summary,
    layer_summary,
    model_differences,
    mossa_table,
)


def reference_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, L = Y Y^T, HSIC(K, L) = tr(K H L H) (float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def planted(n_layers=4, n=24, d=40, seed=0):
    """Control states, and experimental states equal to them (rotated) in the first half of the layers, noise after."""
    g = torch.Generator().manual_seed(seed)
    control = torch.randn(n_layers, n, d, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    experimental = control @ rotation
    experimental[n_layers // 2:] = torch.randn(n_layers - n_layers // 2, n, d, generator=g)
    return experimental, control


def test_table_matches_the_float64_reference_and_recovers_planted_structure():
    exp, ctrl = planted()
    table = mossa_table({"it": {"t1": exp}}, {"t1": ctrl}, {"t1": "qa"})
    assert list(table.columns) == MOSSA_COLUMNS
    for layer in range(4):
        ref = reference_linear_cka(exp[layer].numpy(), ctrl[layer].numpy())
        assert table.loc[table.layer == layer, "cka"].item() == pytest.approx(ref, abs=1e-5)
    curve = table.sort_values("layer")["cka"].to_numpy()
    assert curve[:2] == pytest.approx([1.0, 1.0], abs=1e-5)  # rotation invariance
    assert (curve[2:] < 0.9).all()
    assert table[["ci_low", "ci_high"]].isna().all().all()


def test_tidy_columns_clusters_and_heldout_flags():
    exp_a, ctrl_a = planted(seed=1)
    exp_b, ctrl_b = planted(seed=2)
    table = mossa_table({"pre": {"a": exp_a, "b": exp_b}, "ho": {"a": exp_a, "b": exp_b}}, {"a": ctrl_a, "b": ctrl_b},
                        {"a": "qa", "b": "nli"}, kernels=("linear", "rbf"), heldout={"ho": {"b"}})
    assert len(table) == 2 * 2 * 4 * 2
    assert set(table.loc[table.heldout, "experimental_model"]) == {"ho"}
    assert set(table.loc[table.heldout, "task"]) == {"b"}
    assert dict(table[["task", "cluster"]].drop_duplicates().to_numpy()) == {"a": "qa", "b": "nli"}
    assert set(table.kernel) == {"linear", "rbf"}


def test_bootstrap_uses_the_same_resamples_as_a_direct_computation():
    exp, ctrl = planted(n=12, d=30)  # d > n: the row-space projection is used
    curves = bootstrap_curves(exp, ctrl, kernel="linear", debiased=False, n_bootstrap=5, seed=7, chunk=2)
    indices = np.random.default_rng(7).integers(0, 12, size=(5, 12))
    for b, idx in enumerate(indices):
        for layer in range(4):
            ref = reference_linear_cka(exp[layer, idx].numpy(), ctrl[layer, idx].numpy())
            assert curves[b, layer] == pytest.approx(ref, abs=1e-4)


def test_row_space_bootstrap_of_a_nonlinear_kernel_equals_resampling_the_raw_states():
    from taskscope.similarity import cka

    exp, ctrl = planted(n=10, d=30)
    curves = bootstrap_curves(exp, ctrl, kernel="rbf", debiased=False, n_bootstrap=4, seed=3)
    for b, idx in enumerate(np.random.default_rng(3).integers(0, 10, size=(4, 10))):
        direct = cka(exp[:, idx].double(), ctrl[:, idx].double(), kernel="rbf", precision="float64")
        np.testing.assert_allclose(curves[b], direct, atol=1e-4)


def test_bootstrap_interval_brackets_a_planted_identity_and_is_paired_across_models():
    exp, ctrl = planted(seed=3)
    table = mossa_table({"m1": {"t": exp}, "m2": {"t": exp.clone()}}, {"t": ctrl}, {"t": "c"}, n_bootstrap=30)
    early = table[table.layer < 2]
    assert (early.ci_low > 0.999).all() and (early.ci_high <= 1 + 1e-5).all()
    late = table[table.layer >= 2]
    assert (late.ci_low < late.ci_high).all() and late.ci_high.le(1 + 1e-5).all()
    m1, m2 = (table[table.experimental_model == m].reset_index(drop=True) for m in ("m1", "m2"))
    pd.testing.assert_series_equal(m1.ci_low, m2.ci_low)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.1, 10.0))
def test_cka_is_invariant_to_rotation_and_scale_of_the_experimental_side(seed, scale):
    exp, ctrl = planted(n_layers=2, n=10, d=6, seed=seed)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(seed + 1)))
    base = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"})["cka"].to_numpy()
    moved = mossa_table({"m": {"t": scale * exp @ rotation}}, {"t": ctrl}, {"t": "c"})["cka"].to_numpy()
    np.testing.assert_allclose(moved, base, atol=1e-4)


def test_constant_states_give_nan_cka_and_nan_interval():
    exp, ctrl = planted()
    exp[0], ctrl[0] = 3.0, -1.0  # every input has the same state at layer 0
    table = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, n_bootstrap=10)
    first = table[table.layer == 0]
    assert first[["cka", "ci_low", "ci_high"]].isna().all().all()
    assert table[table.layer > 0][["cka", "ci_low", "ci_high"]].notna().all().all()


def test_mismatched_inputs_and_missing_controls_are_named():
    exp, ctrl = planted()
    with pytest.raises(ValueError, match="task 't'.*'m'"):
        mossa_table({"m": {"t": exp[:, :10]}}, {"t": ctrl}, {"t": "c"})
    with pytest.raises(KeyError, match="task 'u'"):
        mossa_table({"m": {"u": exp}}, {"t": ctrl}, {"t": "c"})


def test_aggregates_and_differences():
    rows = []
    for model, offset in (("pre", 0.0), ("it", 0.1)):
        for task, cluster, value in (("a", "x", 0.5), ("b", "x", 0.7), ("c", "y", 0.2)):
            for layer in range(2):
                rows.append((model, task, cluster, False, layer, "linear", value + offset + layer / 10, np.nan, np.nan))
    table = pd.DataFrame(rows, columns=MOSSA_COLUMNS)
    clusters = cluster_summary(table)
    x = clusters[(clusters.experimental_model == "pre") & (clusters.cluster == "x") & (clusters.layer == 0)]
    assert x["mean"].item() == pytest.approx(0.6) and x["std"].item() == pytest.approx(0.1)
    layers = layer_summary(table)
    row = layers[(layers.experimental_model == "it") & (layers.layer == 1)]
    assert row["mean"].item() == pytest.approx(np.mean([0.7, 0.9, 0.4])) and row["n_tasks"].item() == 3
    diffs = model_differences(table, "pre")
    assert set(diffs.experimental_model) == {"it"} and diffs["cka_diff"].to_numpy() == pytest.approx([0.1] * 6)
    with pytest.raises(KeyError, match="baseline model 'zzz'"):
        model_differences(table, "zzz")
