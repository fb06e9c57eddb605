"""Proportional sampling: ``p_k = n_k / sum_j n_j`` with capped sizes ``n_k = min(N_k, cap)``."""

from __future__ import annotations

import numpy as np

from .base import TaskSampler, register


@register("proportional")
class ProportionalSampler(TaskSampler):
    """Examples-proportional mixing (seqio ``mixing_rate_num_examples`` with temperature 1); constant over steps."""

    def probabilities(self, step: int) -> np.ndarray:
        return self.sizes / self.sizes.sum()
