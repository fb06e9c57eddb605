"""MOSSA tables against an independent float64 CKA written from the formulas, on activations with planted structure."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.analysis.mossa import (
    DIFFERENCE_COLUMNS,
    MOSSA_COLUMNS,
    _task_seed,
    cluster_summary,
    layer_summary,
    mossa_differences,
    mossa_table,
)
from taskscope.analysis.ceiling import ceiling_table
from taskscope.similarity import bootstrap_ci, cka_sensitivity, paired_difference


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


def test_table_intervals_are_the_similarity_bootstrap_with_the_task_seed():
    exp, ctrl = planted(n=16, d=30)
    table = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, kernels=("rbf",), debiased=True, n_bootstrap=25,
                        seed=4)
    direct = bootstrap_ci(exp, ctrl, "rbf", True, n_resamples=25, seed=_task_seed(4, "t"))
    np.testing.assert_allclose(table.sort_values("layer").ci_low, direct.low, atol=1e-12)
    np.testing.assert_allclose(table.sort_values("layer").ci_high, direct.high, atol=1e-12)


def test_normal_interval_reaches_the_table_differences_and_ceiling():
    exp, ctrl = planted(n=16, d=30)
    noisy = exp + 3.0 * torch.randn(exp.shape, generator=torch.Generator().manual_seed(1))
    table = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, n_bootstrap=25, interval="normal")
    direct = bootstrap_ci(exp, ctrl, interval="normal")
    np.testing.assert_allclose(table.sort_values("layer")[["ci_low", "ci_high"]].to_numpy().T,
                               [direct.low, direct.high], atol=1e-12)
    percentile = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, n_bootstrap=25)
    assert not np.allclose(percentile.ci_low, table.ci_low)
    diffs = mossa_differences({"pre": {"t": noisy}, "it": {"t": exp}}, {"t": ctrl}, {"t": "c"}, "pre",
                              n_bootstrap=25, interval="normal").sort_values("layer")
    paired = paired_difference(exp, noisy, ctrl, n_permutations=0, interval="normal")
    np.testing.assert_allclose(diffs[["ci_low", "ci_high"]].to_numpy().T, [paired.low, paired.high], atol=1e-12)
    ceiling = ceiling_table({"t": [ctrl, exp]}, {"t": "c"}, n_bootstrap=25, interval="normal").sort_values("layer")
    np.testing.assert_allclose(ceiling.ci_low, bootstrap_ci(exp, ctrl, interval="normal").low, atol=1e-12)


def test_sensitivity_columns_expose_a_planted_dominating_direction():
    """One shared huge direction makes CKA high; without the top directions little agreement is left."""
    g = torch.Generator().manual_seed(7)
    n, d = 40, 12
    shared = torch.randn(n, 1, generator=g)
    exp = torch.randn(2, n, d, generator=g)
    ctrl = torch.randn(2, n, d, generator=g)
    exp[1, :, 0:1] += 50 * shared        # layer 1: a massive dimension both sides share
    ctrl[1, :, 3:4] += 50 * shared
    table = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, top_k=1).sort_values("layer")
    assert list(table.columns) == MOSSA_COLUMNS and (table.top_k == 1).all()
    plain, massive = table.iloc[0], table.iloc[1]
    assert massive.cka > 0.9 and massive.cka_without_topk < 0.5
    assert massive.topk_var_share_exp > 0.8 and massive.topk_var_share_ctrl > 0.8
    assert plain.topk_var_share_exp < 0.4
    report = cka_sensitivity(exp[1], ctrl[1], top_k=1)                 # one implementation of the removal
    assert massive.cka_without_topk == pytest.approx(report.without_top_pcs[0], abs=1e-9)
    assert massive.topk_var_share_exp == pytest.approx(report.top_pc_variance[0], abs=1e-9)
    off = mossa_table({"m": {"t": exp}}, {"t": ctrl}, {"t": "c"}, top_k=0)
    assert off[["topk_var_share_exp", "topk_var_share_ctrl", "cka_without_topk"]].isna().all().all()


def test_differences_are_paired_with_intervals_and_p_values():
    exp, ctrl = planted(seed=5)
    noisy = exp + 3.0 * torch.randn(exp.shape, generator=torch.Generator().manual_seed(1))
    models = {"pre": {"t": noisy}, "it": {"t": exp}}
    diffs = mossa_differences(models, {"t": ctrl}, {"t": "c"}, "pre", n_bootstrap=40, n_permutations=99, seed=2)
    assert list(diffs.columns) == DIFFERENCE_COLUMNS and set(diffs.experimental_model) == {"it"}
    table = mossa_table(models, {"t": ctrl}, {"t": "c"})
    by_model = table.pivot(index="layer", columns="experimental_model", values="cka")
    np.testing.assert_allclose(diffs.sort_values("layer").cka_diff, by_model["it"] - by_model["pre"], atol=1e-6)
    early = diffs[diffs.layer < 2]                      # it = rotated control, pre = noisy copy of it
    assert (early.ci_low > 0).all() and (early.p_value <= 0.02).all()
    assert (diffs.ci_low <= diffs.ci_high).all()
    with pytest.raises(KeyError, match="baseline model 'zzz'"):
        mossa_differences(models, {"t": ctrl}, {"t": "c"}, "zzz")


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


def test_aggregates():
    rows = []
    for model, offset in (("pre", 0.0), ("it", 0.1)):
        for task, cluster, value in (("a", "x", 0.5), ("b", "x", 0.7), ("c", "y", 0.2)):
            for layer in range(2):
                rows.append((model, task, cluster, False, layer, "linear", value + offset + layer / 10, np.nan, np.nan,
                             3, np.nan, np.nan, np.nan))
    table = pd.DataFrame(rows, columns=MOSSA_COLUMNS)
    clusters = cluster_summary(table)
    x = clusters[(clusters.experimental_model == "pre") & (clusters.cluster == "x") & (clusters.layer == 0)]
    assert x["mean"].item() == pytest.approx(0.6) and x["std"].item() == pytest.approx(0.1)
    layers = layer_summary(table)
    row = layers[(layers.experimental_model == "it") & (layers.layer == 1)]
    assert row["mean"].item() == pytest.approx(np.mean([0.7, 0.9, 0.4])) and row["n_tasks"].item() == 3
