"""Massive-activation sensitivity of the layer map: which layers' conclusions flip without the top-k directions.

`topk_flips(table, params)`, in this order:

1. the layer map of ``table`` as it is (``cka``), and the layer map of the same table with ``cka``
   replaced by ``cka_without_topk`` (CKA with each side's top ``top_k`` principal directions removed,
   :func:`taskscope.similarity.cka_without_top_directions`), both with ``params`` (changepoint rule);
2. per layer, two conclusions under each: its claimed band (:meth:`LayerMap.band_of`, ``None`` = no
   band) and the direction of the reference-minus-baseline difference (``+1`` / ``-1`` where the
   task-bootstrap interval excludes 0, else ``0``);
3. a layer *flips* when either conclusion differs between the two maps.

The result (``findings.json`` -> ``sensitivity``): ``top_k``, ``flipped_layers`` and one row per layer.
Without the sensitivity column (``top_k: 0``) it is ``{"top_k": None, "flipped_layers": [], "layers": []}``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taskscope.analysis.layer_map import LayerMap, LayerMapParams, find_layer_map


def _directions(layer_map: LayerMap) -> list[int]:
    low = np.array(layer_map.difference_low or [np.nan] * layer_map.num_layers, dtype=np.float64)
    high = np.array(layer_map.difference_high or [np.nan] * layer_map.num_layers, dtype=np.float64)
    return [1 if lo > 0 else -1 if hi < 0 else 0 for lo, hi in zip(low, high)]


def topk_flips(table: pd.DataFrame, params: LayerMapParams) -> dict:
    """Layers whose band or difference direction changes when CKA loses its top-k directions (module docstring)."""
    if "cka_without_topk" not in table or table["cka_without_topk"].isna().all():
        return {"top_k": None, "flipped_layers": [], "layers": []}
    params = params.model_copy(update={"rule": "changepoint"})
    with_topk = find_layer_map(table, params)
    without = find_layer_map(table.assign(cka=table["cka_without_topk"]), params)
    direction, direction_without = _directions(with_topk), _directions(without)
    rows = []
    for layer in range(with_topk.num_layers):
        band, band_without = with_topk.band_of(layer), without.band_of(layer)
        rows.append({"layer": layer, "band": band, "band_without_topk": band_without,
                     "direction": direction[layer], "direction_without_topk": direction_without[layer],
                     "flipped": band != band_without or direction[layer] != direction_without[layer]})
    top_k = pd.to_numeric(table.get("top_k"), errors="coerce")
    return {"top_k": int(top_k.max()) if top_k is not None and top_k.notna().any() else None,
            "flipped_layers": [r["layer"] for r in rows if r["flipped"]], "layers": rows}
