"""The layer map: split a model's layers into *shared*, *transition* and *refinement* bands.

Rule (deterministic; every parameter is stored with the result):

1. Take the MOSSA rows of the reference experimental model (``reference_model``, by default the
   model instruction-tuned on all tasks) and one ``kernel``.
2. Per layer ``l`` compute ``m_l`` = mean CKA across tasks and ``s_l`` = spread across tasks
   (``spread="std"``: population standard deviation; ``"iqr"``: inter-quartile range).
3. **Shared** band = the longest run of *leading* layers ``0 .. a-1`` with
   ``m_l >= shared_min_cka`` and ``s_l <= max_spread`` (the model keeps what each task's control
   keeps, uniformly across tasks).
4. **Refinement** band = the longest run of *trailing* layers ``b .. L`` (``b >= a``) with
   ``m_l < refinement_max_cka`` or ``s_l > max_spread`` (the model departs from the task
   specialists, or does so unevenly across tasks).
5. **Transition** band = the layers in between, ``a .. b-1``; it may be empty (the paper finds
   none for models instruction-tuned with the tasks held out).

Layers whose CKA is undefined for every task (NaN: constant states, e.g. the embedding layer under
last-token pooling when every prompt ends in the same token) neither break nor end a band: both
scans pass over them.  Otherwise NaN entries of single tasks are left out of that layer's mean and spread.

Bands are half-open ``[start, stop)`` layer ranges in the hidden-state numbering (0 = embeddings).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

BANDS = ("shared", "transition", "refinement")


class LayerMapParams(BaseModel):
    """Parameters of the layer-map rule (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    reference_model: str = "instruction_tuned"
    kernel: str = "linear"
    shared_min_cka: float = Field(0.8, ge=0, le=1)
    refinement_max_cka: float = Field(0.6, ge=0, le=1)
    max_spread: float = Field(0.1, ge=0)
    spread: Literal["std", "iqr"] = "std"

    @model_validator(mode="after")
    def _ordered(self) -> LayerMapParams:
        if self.refinement_max_cka > self.shared_min_cka:
            raise ValueError(
                f"refinement_max_cka ({self.refinement_max_cka}) must not exceed shared_min_cka ({self.shared_min_cka})"
            )
        return self


@dataclass(frozen=True)
class LayerMap:
    """Result of :func:`find_layer_map`: bands as ``[start, stop)`` and the curves they came from."""

    params: dict
    num_layers: int  # hidden-state layers including the embeddings
    shared: tuple[int, int]
    transition: tuple[int, int]
    refinement: tuple[int, int]
    mean_cka: tuple[float, ...]
    spread: tuple[float, ...]

    def band_of(self, layer: int) -> str:
        for name in BANDS:
            start, stop = getattr(self, name)
            if start <= layer < stop:
                return name
        raise IndexError(f"layer {layer} outside 0..{self.num_layers - 1}")

    @property
    def labels(self) -> list[str]:
        return [self.band_of(layer) for layer in range(self.num_layers)]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["labels"] = self.labels
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> LayerMap:
        return cls(params=dict(data["params"]), num_layers=int(data["num_layers"]),
                   mean_cka=tuple(data["mean_cka"]), spread=tuple(data["spread"]),
                   **{name: tuple(data[name]) for name in BANDS})


def layer_curves(table: pd.DataFrame, params: LayerMapParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer mean CKA and spread across tasks of ``params.reference_model`` under ``params.kernel``."""
    rows = table[(table["experimental_model"] == params.reference_model) & (table["kernel"] == params.kernel)]
    if rows.empty:
        raise KeyError(
            f"layer map: no MOSSA rows for reference_model {params.reference_model!r} with kernel {params.kernel!r}; "
            f"models {sorted(set(table['experimental_model']))}, kernels {sorted(set(table['kernel']))}"
        )
    by_layer = rows.pivot_table(index="layer", columns="task", values="cka", dropna=False)
    by_layer = by_layer.reindex(range(int(rows["layer"].max()) + 1))
    values = by_layer.to_numpy(dtype=np.float64)
    with warnings.catch_warnings():  # all-NaN layers give NaN curves, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=1)
        if params.spread == "std":
            spread = np.nanstd(values, axis=1)
        else:
            spread = np.nanquantile(values, 0.75, axis=1) - np.nanquantile(values, 0.25, axis=1)
    return mean, spread


def bands_from_curves(mean: np.ndarray, spread: np.ndarray, params: LayerMapParams) -> dict[str, tuple[int, int]]:
    """Steps 3-5 of the rule on given curves -> ``{"shared": (0, a), "transition": (a, b), "refinement": (b, L)}``."""
    n = len(mean)
    a = 0
    undefined = np.isnan(mean)
    while a < n and (undefined[a] or (mean[a] >= params.shared_min_cka and spread[a] <= params.max_spread)):
        a += 1
    b = n
    while b > a and (undefined[b - 1] or mean[b - 1] < params.refinement_max_cka or spread[b - 1] > params.max_spread):
        b -= 1
    return {"shared": (0, a), "transition": (a, b), "refinement": (b, n)}


def find_layer_map(table: pd.DataFrame, params: LayerMapParams | None = None) -> LayerMap:
    """Apply the rule of the module docstring to a MOSSA table (see :func:`taskscope.analysis.mossa.mossa_table`)."""
    params = params or LayerMapParams()
    mean, spread = layer_curves(table, params)
    bands = bands_from_curves(mean, spread, params)
    return LayerMap(params=params.model_dump(), num_layers=len(mean), mean_cka=tuple(map(float, mean)),
                    spread=tuple(map(float, spread)), **bands)
