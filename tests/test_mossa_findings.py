"""Findings with verdicts on planted MOSSA tables, the controls table and the noise-ceiling comparison."""

import numpy as np
import pandas as pd
import pytest

from taskscope.analysis.ceiling import compare_to_ceiling, noise_share
from taskscope.analysis.controls import controls_table
from taskscope.analysis.findings import VERDICTS
from taskscope.analysis.layer_map import LayerMapParams, find_layer_map
from taskscope.analysis.mossa_findings import mossa_findings

PARAMS = LayerMapParams(n_bootstrap=100, n_permutations=256)
N_LAYERS = 20


def _pretrained_curve(task: int) -> np.ndarray:
    """High early; tasks fan out with depth (spread grows)."""
    depth = np.arange(N_LAYERS) / (N_LAYERS - 1)
    return 0.9 - 0.3 * depth + (task - 3.5) * 0.04 * depth


def _table(n_tasks=8, seed=0, noise=0.02, figure2=True, heldout_tasks=()):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        pt = _pretrained_curve(t)
        it = pt.copy()
        if figure2:
            it[1:6] -= 0.1
            it[6:11] += 0.3 * (np.arange(6, 11) - 5) / 5
            it[11:] += 0.3
        held = pt.copy()
        held[1:6] -= 0.1
        held[6:] += 0.2  # a jump, no rising transition
        for model, curve in (("pretrained", pt), ("instruction_tuned", it), ("heldout_model", held)):
            for layer in range(N_LAYERS):
                value = np.nan if layer == 0 else curve[layer] + rng.normal(0, noise)
                rows.append({"experimental_model": model, "task": f"t{t}", "cluster": f"c{t % 4}",
                             "heldout": model == "heldout_model" and t in heldout_tasks, "layer": layer,
                             "kernel": "linear", "cka": value, "ci_low": value - 0.02, "ci_high": value + 0.02})
    return pd.DataFrame(rows)


def _by_id(findings):
    return {f.id: f for f in findings}


def test_planted_figure_2_supports_the_band_claim_and_the_heldout_claim():
    table = _table(heldout_tasks=range(8))
    layer_map = find_layer_map(table, PARAMS)
    found = _by_id(mossa_findings(table, layer_map, PARAMS, heldout_models=["heldout_model"]))
    assert set(found) == {"C1", "N1", "F1", "F2", "F3", "F4"}
    assert all(f.verdict in VERDICTS and f.reason for f in found.values())
    assert found["F2"].verdict == "supported" and found["F2"].value == 3 and found["F2"].p_value < 0.05
    assert found["F1"].verdict == "supported" and found["F1"].interval[0] > 0
    assert found["F3"].verdict == "supported", found["F3"].reason
    assert found["C1"].verdict == "inconclusive" and found["N1"].verdict == "inconclusive"  # nothing to judge


def test_without_a_planted_effect_the_band_claim_is_not_supported():
    table = _table(figure2=False, seed=3)
    table.loc[table["experimental_model"] == "instruction_tuned", "cka"] = (
        table.loc[table["experimental_model"] == "pretrained", "cka"].to_numpy()
        + np.random.default_rng(1).normal(0, 0.02, (table["experimental_model"] == "pretrained").sum()))
    layer_map = find_layer_map(table, PARAMS)
    found = _by_id(mossa_findings(table, layer_map, PARAMS))
    assert found["F2"].verdict != "supported"


def test_too_few_tasks_make_every_table_claim_inconclusive():
    table = _table(n_tasks=2, heldout_tasks=(0, 1))
    found = _by_id(mossa_findings(table, find_layer_map(table, PARAMS), PARAMS, heldout_models=["heldout_model"]))
    for key in ("F1", "F2", "F3"):
        assert found[key].verdict == "inconclusive" and found[key].n == 2


def _scores(losses):
    return {"loss": list(losses)}


def test_controls_table_flags_a_control_that_did_not_learn_and_c1_names_it():
    rows = [{"task": "a", "cluster": "x", "seed": 0, "item": "a", "steps": 3, "stop_reason": "max_steps",
             "control": _scores([1.0, 1.1, 0.9]), "base": _scores([2.0, 2.1, 1.9])},
            {"task": "b", "cluster": "y", "seed": 1, "item": "b@s1", "steps": 3, "stop_reason": "max_steps",
             "control": _scores([2.0, 2.1, 1.9]), "base": _scores([2.01, 2.1, 1.9])}]
    table = controls_table(rows, margin=0.05, n_bootstrap=200)
    assert table["learned"].tolist() == [True, False]
    assert table.loc[0, "loss_gain"] == pytest.approx(1.0)
    assert table.loc[0, "loss_gain_ci_low"] <= 1.0 <= table.loc[0, "loss_gain_ci_high"]
    assert np.isnan(table.loc[0, "control_rouge_l"])  # not generated
    found = _by_id(mossa_findings(_table(), find_layer_map(_table(), PARAMS), PARAMS, controls=table))
    assert found["C1"].verdict == "contradicted" and "b@s1" in found["C1"].reason
    with pytest.raises(ValueError, match="same examples"):
        controls_table([{**rows[0], "base": _scores([1.0])}], margin=0.05)


def test_ceiling_comparison_flags_layers_within_seed_noise():
    table = _table()
    ceiling = (table[table["experimental_model"] == "pretrained"][["task", "cluster", "layer", "kernel"]]
               .assign(pair="s0-s1", cka=0.8, ci_low=0.78, ci_high=0.82))
    ceiling.loc[ceiling["layer"] == 0, ["cka", "ci_low", "ci_high"]] = np.nan
    comparison = compare_to_ceiling(table, ceiling)
    rows = comparison[comparison["experimental_model"] == "pretrained"]
    expected = rows["ci_high"] >= 0.78
    defined = rows["layer"] > 0
    assert (rows.loc[defined, "within_noise"].astype(bool) == expected[defined]).all()
    assert rows.loc[~defined, "within_noise"].isna().all()
    share = noise_share(rows)
    assert np.isnan(share.loc[0]) and share.loc[1] == 1.0  # early layers (CKA ~0.9) reach the ceiling
    found = _by_id(mossa_findings(table, find_layer_map(table, PARAMS), PARAMS, comparison=comparison))
    assert found["N1"].n == 8 and found["N1"].verdict in VERDICTS and "within seed noise" in found["N1"].reason


def test_topk_sensitivity_names_exactly_the_layers_whose_conclusion_rests_on_the_top_directions():
    from taskscope.analysis.sensitivity import topk_flips

    table = _table()
    same = topk_flips(table.assign(cka_without_topk=table["cka"], top_k=3), PARAMS)
    assert same["top_k"] == 3 and same["flipped_layers"] == [] and len(same["layers"]) == N_LAYERS
    found = _by_id(mossa_findings(table, find_layer_map(table, PARAMS), PARAMS, sensitivity=same))
    assert found["R1"].verdict == "supported"
    # without the top directions the instruction-tuned model falls back to the pre-trained curve in 13-16
    it, pt = table["experimental_model"] == "instruction_tuned", table["experimental_model"] == "pretrained"
    without = table["cka"].to_numpy().copy()
    moved = it & table["layer"].between(13, 16)
    without[moved.to_numpy()] = table.loc[pt & table["layer"].between(13, 16), "cka"].to_numpy()
    flips = topk_flips(table.assign(cka_without_topk=without, top_k=3), PARAMS)
    rows = {r["layer"]: r for r in flips["layers"]}
    assert set(range(13, 17)) <= set(flips["flipped_layers"]), flips["flipped_layers"]
    assert all(rows[layer]["direction"] == 1 and rows[layer]["direction_without_topk"] == 0 for layer in range(13, 17))
    assert not set(range(1, 6)) & set(flips["flipped_layers"])            # the shared band does not move
    r1 = _by_id(mossa_findings(table, find_layer_map(table, PARAMS), PARAMS, sensitivity=flips))["R1"]
    assert r1.verdict == "contradicted" and "13" in r1.reason and r1.value == len(flips["flipped_layers"])
    assert topk_flips(table, PARAMS)["flipped_layers"] == []              # no sensitivity column: nothing claimed
