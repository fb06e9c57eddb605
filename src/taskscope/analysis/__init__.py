"""Analysis: MOSSA tables (:mod:`.mossa`), their aggregates, the layer map (:mod:`.layer_map`), the controls'
scores (:mod:`.controls`), the noise ceiling (:mod:`.ceiling`) and the findings (:mod:`.mossa_findings`).

Names are imported on first use, so reading results (layer maps, tables) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LayerMap": "layer_map", "LayerMapParams": "layer_map", "find_layer_map": "layer_map",
    "mossa_table": "mossa", "layer_summary": "mossa", "cluster_summary": "mossa", "mossa_differences": "mossa",
    "controls_table": "controls", "ceiling_table": "ceiling", "compare_to_ceiling": "ceiling",
    "mossa_findings": "mossa_findings", "similarity_frame": "frames",
}

__all__ = [
    "LayerMap", "LayerMapParams", "ceiling_table", "cluster_summary", "compare_to_ceiling", "controls_table",
    "find_layer_map", "layer_summary", "mossa_differences", "mossa_findings", "mossa_table",
    "similarity_frame",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'taskscope.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taskscope.analysis.{_EXPORTS[name]}"), name)
