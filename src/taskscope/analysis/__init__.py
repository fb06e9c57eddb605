"""Analysis: MOSSA tables (:mod:`.mossa`), their aggregates and the layer map (:mod:`.layer_map`).

Names are imported on first use, so reading results (layer maps, tables) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LayerMap": "layer_map", "LayerMapParams": "layer_map", "find_layer_map": "layer_map",
    "mossa_table": "mossa", "layer_summary": "mossa", "cluster_summary": "mossa", "mossa_differences": "mossa",
}

__all__ = [
    "LayerMap", "LayerMapParams", "cluster_summary", "find_layer_map", "layer_summary", "mossa_differences",
    "mossa_table",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'taskscope.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taskscope.analysis.{_EXPORTS[name]}"), name)
