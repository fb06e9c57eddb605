"""Reverse temperature annealing: the temperature rises linearly from 1 to ``T_max`` over training.

``T(s) = 1 + (T_max - 1) * min(s, S) / S`` with ``S = total_steps``, then ``p_k ∝ min(N_k, cap)^(1/T(s))``.
Training therefore starts examples-proportional and ends close to uniform.  The schedule is linear in ``T``
(the issue's choice; the Multi-Task Transfer paper gives only the grid ``T_max`` in 10^2 .. 10^5); steps past
``S`` keep ``T_max``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import TaskSampler, register
from .temperature import temperature_probabilities


@register("reverse_annealing")
class ReverseAnnealingSampler(TaskSampler):
    """Temperature schedule from 1 at step 0 to ``max_temperature`` (default 1e3) at ``total_steps``."""

    def __init__(self, sizes: Sequence[int], *, max_temperature: float = 1e3, **kwargs: Any) -> None:
        super().__init__(sizes, **kwargs)
        if self.total_steps is None:
            raise ValueError("reverse_annealing sampler needs total_steps (the length S of the schedule)")
        if not max_temperature >= 1:
            raise ValueError(f"reverse_annealing sampler: max_temperature must be >= 1, got {max_temperature}")
        self.max_temperature = float(max_temperature)

    def temperature(self, step: int) -> float:
        """``T(s) = 1 + (T_max - 1) * min(s, S) / S``."""
        assert self.total_steps is not None
        progress = min(max(step, 0), self.total_steps) / self.total_steps
        return 1.0 + (self.max_temperature - 1.0) * progress

    def probabilities(self, step: int) -> np.ndarray:
        return temperature_probabilities(self.sizes, self.temperature(step))

    def log_record(self, step: int) -> dict[str, Any]:
        return {**super().log_record(step), "temperature": self.temperature(step)}
