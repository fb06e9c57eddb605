"""The layer-map rule on synthetic MOSSA tables with planted shared / transition / refinement bands."""

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

PARAMS = LayerMapParams(shared_min_cka=0.8, refinement_max_cka=0.5, max_spread=0.1)


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


def test_undefined_layers_neither_break_nor_end_a_band():
    table = _table([np.nan, 0.9, 0.9, np.nan, 0.7, 0.2, np.nan], [0.0] * 7)
    layer_map = find_layer_map(table, PARAMS)
    assert layer_map.num_layers == 7
    assert layer_map.shared == (0, 4) and layer_map.transition == (4, 5) and layer_map.refinement == (5, 7)
    assert np.isnan(layer_map.mean_cka[0])


def test_uses_only_the_reference_model_and_kernel():
    table = pd.concat([_table([0.9, 0.9, 0.2], [0.0] * 3),
                       _table([0.1, 0.1, 0.1], [0.0] * 3, model="pretrained"),
                       _table([0.1, 0.1, 0.1], [0.0] * 3, kernel="rbf")])
    assert find_layer_map(table, PARAMS).shared == (0, 2)
    with pytest.raises(KeyError, match="reference_model 'other'"):
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


def test_low_first_layer_and_high_last_layers_give_no_shared_and_no_refinement_band():
    mean, spread = np.array([0.2, 0.9, 0.9]), np.zeros(3)
    bands = bands_from_curves(mean, spread, PARAMS)
    assert bands == {"shared": (0, 0), "transition": (0, 3), "refinement": (3, 3)}


def test_invalid_params_name_the_field():
    with pytest.raises(ValidationError, match="refinement_max_cka"):
        LayerMapParams(shared_min_cka=0.5, refinement_max_cka=0.7)
    with pytest.raises(ValidationError, match="max_spred"):
        LayerMapParams(max_spred=0.1)
