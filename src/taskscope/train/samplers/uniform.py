"""Uniform sampling: ``p_k = 1 / K`` whatever the task sizes."""

from __future__ import annotations

import numpy as np

from .base import TaskSampler, register


@register("uniform")
class UniformSampler(TaskSampler):
    """Every task equally likely at every step."""

    def probabilities(self, step: int) -> np.ndarray:
        return np.full(self.num_tasks, 1.0 / self.num_tasks)
