"""The layer-map rules on synthetic MOSSA tables with planted shared / transition / refinement bands."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskscope.analysis.layer_map import (
    LayerMap,
    LayerMapParams,
    bands_from_curves,
    find_layer_map,
)

PARAMS = LayerMapParams(rule="threshold", shared_min_cka=0.8, refinement_max_cka=0.5, max_spread=0.1)


def _table(means, spreads, n_tasks=4, model="instruction_tuned", kernel="linear"):
    """Tasks deviate by +-spread from the layer mean, so the population std across tasks is exactly ``spread``."""
    signs = np.array([1.0, -1.0] * (n_tasks // 2))
    rows = []
    for layer, (m, s) in enumerate(zip(means, spreads)):
        for t, sign in enumerate(signs):
            rows.append({"experimental_model": model, "task": f"t{t}", "cluster": "c", "heldout": False,
                         "layer": layer, "kernel": kernel, "cka": m + sign * s})
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.data())
def test_recovers_planted_bands(n_shared, n_transition, n_refine, data):
    n = n_shared + n_transition + n_refine
    if n == 0:
        return
    draw = data.draw
    means, spreads = [], []
    for _ in range(n_shared):
        means.append(draw(st.floats(0.81, 0.98)))
        spreads.append(draw(st.floats(0.0, 0.09)))
    for _ in range(n_transition):
        means.append(draw(st.floats(0.51, 0.79)))
        spreads.append(draw(st.floats(0.0, 0.09)))
    for _ in range(n_refine):
        low_mean = draw(st.booleans())
        means.append(draw(st.floats(0.05, 0.49)) if low_mean else draw(st.floats(0.5, 0.85)))
        spreads.append(draw(st.floats(0.0, 0.09)) if low_mean else draw(st.floats(0.11, 0.14)))
    layer_map = find_layer_map(_table(means, spreads), PARAMS)
    assert layer_map.shared == (0, n_shared)
    assert layer_map.transition == (n_shared, n_shared + n_transition)
    assert layer_map.refinement == (n_shared + n_transition, n)
    assert layer_map.labels == ["shared"] * n_shared + ["transition"] * n_transition + ["refinement"] * n_refine
    np.testing.assert_allclose(layer_map.mean_cka, means, atol=1e-12)
    np.testing.assert_allclose(layer_map.spread, spreads, atol=1e-12)


def test_no_transition_when_the_curve_drops_sharply():
    means = [1.0, 0.95, 0.9, 0.3, 0.2]
    layer_map = find_layer_map(_table(means, [0.01] * 5), PARAMS)
    assert layer_map.shared == (0, 3) and layer_map.transition == (3, 3) and layer_map.refinement == (3, 5)


def test_shared_band_stops_at_first_failing_layer_even_if_later_layers_are_high():
    means = [0.9, 0.7, 0.9, 0.9, 0.2]
    layer_map = find_layer_map(_table(means, [0.0] * 5), PARAMS)
    assert layer_map.shared == (0, 1)
    assert layer_map.transition == (1, 4)
    assert layer_map.refinement == (4, 5)


def test_undefined_layers_neither_break_nor_end_a_band_and_belong_to_none():
    table = _table([np.nan, 0.9, 0.9, np.nan, 0.7, 0.2, np.nan], [0.0] * 7)
    layer_map = find_layer_map(table, PARAMS)
    assert layer_map.num_layers == 7 and layer_map.undefined == (0, 3, 6)
    assert layer_map.shared == (1, 4) and layer_map.transition == (4, 5) and layer_map.refinement == (5, 6)
    assert layer_map.labels == [None, "shared", "shared", None, "transition", "refinement", None]
    assert np.isnan(layer_map.mean_cka[0])


def test_uses_only_the_reference_model_and_kernel():
    table = pd.concat([_table([0.9, 0.9, 0.2], [0.0] * 3),
                       _table([0.1, 0.1, 0.1], [0.0] * 3, model="pretrained"),
                       _table([0.1, 0.1, 0.1], [0.0] * 3, kernel="rbf")])
    assert find_layer_map(table, PARAMS).shared == (0, 2)
    with pytest.raises(KeyError, match="no MOSSA rows for model 'other'"):
        find_layer_map(table, PARAMS.model_copy(update={"reference_model": "other"}))


def test_iqr_spread_matches_numpy():
    table = _table([0.9, 0.9], [0.05, 0.2])
    layer_map = find_layer_map(table, PARAMS.model_copy(update={"spread": "iqr"}))
    values = table[table.layer == 1]["cka"].to_numpy()
    assert layer_map.spread[1] == pytest.approx(np.quantile(values, 0.75) - np.quantile(values, 0.25))


def test_json_round_trip_keeps_parameters_and_bands():
    layer_map = find_layer_map(_table([0.9, 0.6, 0.2], [0.0] * 3), PARAMS)
    data = json.loads(layer_map.to_json())
    assert data["params"]["shared_min_cka"] == 0.8 and data["labels"] == ["shared", "transition", "refinement"]
    assert LayerMap.from_dict(data) == layer_map
    assert data["params"]["rule"] == "threshold"


def test_low_first_layer_and_high_last_layers_give_no_shared_and_no_refinement_band():
    mean, spread = np.array([0.2, 0.9, 0.9]), np.zeros(3)
    bands = bands_from_curves(mean, spread, PARAMS)
    assert bands == {"shared": (0, 0), "transition": (0, 3), "refinement": (3, 3)}


def test_invalid_params_name_the_field():
    with pytest.raises(ValidationError, match="refinement_max_cka"):
        LayerMapParams(shared_min_cka=0.5, refinement_max_cka=0.7)
    with pytest.raises(ValidationError, match="max_spred"):
        LayerMapParams(max_spred=0.1)
    with pytest.raises(ValidationError, match="rule"):
        LayerMapParams(rule="thresholds")
    with pytest.raises(ValidationError, match="baseline_model"):
        LayerMapParams(baseline_model="instruction_tuned")


# ---------------------------------------------------------------- changepoint rule
CHANGEPOINT = LayerMapParams(n_bootstrap=200, n_permutations=256)


def _paired(it, pt, n_tasks=8, noise=0.03, seed=0):
    """MOSSA rows of an instruction-tuned and a pre-trained model: planted curves plus independent noise per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        for layer, (a, b) in enumerate(zip(it, pt)):
            for model, value in (("instruction_tuned", a), ("pretrained", b)):
                rows.append({"experimental_model": model, "task": f"t{t}", "cluster": f"c{t % 4}", "heldout": False,
                             "layer": layer, "kernel": "linear", "cka": value + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def _pretrained(n_layers=33):
    """High early, falling with depth (Figure 2's pre-trained curve); layer 0 undefined (last-token pooling)."""
    return np.array([np.nan] + [0.9 - 0.4 * layer / (n_layers - 1) for layer in range(1, n_layers)])


def _figure2(pt):
    """IT below PT in layers 1-9 (shared), rising over 10-15 (transition), staying high from 16 (refinement)."""
    it = pt.copy()
    for layer in range(1, len(pt)):
        if layer < 10:
            it[layer] = pt[layer] - 0.1
        elif layer < 16:
            it[layer] = pt[layer] + 0.3 * (layer - 9) / 6
        else:
            it[layer] = pt[layer] + 0.3
    return it


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_changepoint_recovers_the_three_bands_of_figure_2(seed):
    pt = _pretrained()
    layer_map = find_layer_map(_paired(_figure2(pt), pt, seed=seed), CHANGEPOINT)
    assert all(layer_map.evidence[band]["claimed"] for band in ("shared", "transition", "refinement"))
    shared, transition, refinement = layer_map.shared, layer_map.transition, layer_map.refinement
    assert shared[0] == 1 and abs(shared[1] - 10) <= 1            # layer 0 is undefined: in no band
    assert transition[0] == shared[1] and abs(transition[1] - 16) <= 1
    assert refinement == (transition[1], 33)
    assert layer_map.labels[0] is None and layer_map.undefined == (0,)
    start = layer_map.evidence["transition"]["start_interval"]
    stop = layer_map.evidence["refinement"]["start_interval"]
    assert start[0] - 1 <= 10 <= start[1] + 1 and stop[0] - 1 <= 16 <= stop[1] + 1
    assert "transition" in layer_map.describe("transition")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_changepoint_finds_no_transition_when_it_jumps_straight_to_refinement_as_in_figure_7(seed):
    pt = _pretrained()
    it = pt.copy()
    it[1:10] -= 0.1
    it[10:] += 0.2
    layer_map = find_layer_map(_paired(it, pt, seed=seed + 10), CHANGEPOINT)
    assert layer_map.transition[0] == layer_map.transition[1]     # empty: a valid answer
    assert layer_map.shared == (1, 10) and layer_map.refinement == (10, 33)


def test_changepoint_claims_no_band_on_noise_at_about_its_level():
    pt = _pretrained()
    params = CHANGEPOINT.model_copy(update={"n_bootstrap": 0})
    claimed = [any(find_layer_map(_paired(pt, pt, n_tasks=6, seed=s), params).evidence[band]["claimed"]
                   for band in ("shared", "transition", "refinement")) for s in range(24)]
    # three tests at alpha = 0.05 each: about 15 % of noise-only studies may claim some band, by chance
    assert sum(claimed) <= 7
    one = find_layer_map(_paired(pt, pt, seed=100), CHANGEPOINT)
    if not any(one.evidence[b]["claimed"] for b in ("shared", "transition", "refinement")):
        assert set(one.labels) == {None}


def test_changepoint_with_too_few_tasks_cannot_claim_anything():
    pt = _pretrained()
    layer_map = find_layer_map(_paired(_figure2(pt), pt, n_tasks=3), CHANGEPOINT)
    # 2^3 sign flips: the smallest attainable p-value is 1/8 > alpha
    assert not any(layer_map.evidence[b]["claimed"] for b in ("shared", "transition", "refinement"))


def test_changepoint_map_round_trips_through_json():
    pt = _pretrained(12)
    layer_map = find_layer_map(_paired(_figure2(pt)[:12], pt, seed=3), CHANGEPOINT)
    again = LayerMap.from_dict(json.loads(layer_map.to_json()))
    assert again.labels == layer_map.labels and again.evidence == json.loads(json.dumps(layer_map.evidence))
    np.testing.assert_array_equal(np.array(again.difference), np.array(layer_map.difference))
