"""Similarity results as pandas tables for notebooks: :func:`similarity_frame`.

:func:`taskscope.similarity.similarity` stays numpy (a float, or an array over the leading positions of stacked
inputs) because ``similarity/`` is pure tensor maths; this wraps it for stacks of per-layer states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from taskscope.similarity import similarity


def similarity_frame(X: Any, Y: Any, measures: Sequence[str] = ("cka",), *, index_name: str = "layer",
                     params: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """One row per leading position of the stacks ``X (..., n, d1)`` / ``Y (..., n, d2)`` (for hidden states
    ``(layers + 1, n, d)``: one row per layer), one column per measure; ``params[measure]`` are its parameters.
    Unstacked ``(n, d)`` inputs give one row (position 0)."""
    params = params or {}
    columns = {measure: np.atleast_1d(np.asarray(similarity(X, Y, measure, **params.get(measure, {})),
                                                 dtype=np.float64)).reshape(-1) for measure in measures}
    frame = pd.DataFrame(columns)
    frame.index.name = index_name
    return frame
