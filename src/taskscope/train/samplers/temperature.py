"""Temperature sampling as seqio ``mixing_rate_num_examples``: ``p_k ∝ min(N_k, cap)^(1/T)``.

Order of operations: cap the sizes, take logs, divide by ``T``, softmax (computed in log space so that a
huge ``T`` gives exactly uniform probabilities without overflow).  ``T = 1`` is proportional sampling and
``T -> inf`` is uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import TaskSampler, normalise_log_weights, register


def temperature_probabilities(sizes: np.ndarray, temperature: float) -> np.ndarray:
    """``p_k = n_k^(1/T) / sum_j n_j^(1/T)`` for capped sizes ``n_k`` and temperature ``T > 0``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return normalise_log_weights(np.log(sizes) / temperature)


@register("temperature")
class TemperatureSampler(TaskSampler):
    """Constant temperature ``T`` (default 1.0, i.e. proportional)."""

    def __init__(self, sizes: Sequence[int], *, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(sizes, **kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature sampler: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def probabilities(self, step: int) -> np.ndarray:
        return temperature_probabilities(self.sizes, self.temperature)
