"""UniMax (Chung et al. 2023): spread a budget uniformly over tasks, at most ``max_epochs`` epochs each.

Order of operations, with capped sizes ``n_k`` and budget ``B`` (examples to be drawn over the run):

1. visit tasks from smallest to largest ``n_k`` (ties by index);
2. give each the smaller of an equal share of the remaining budget, ``B_left / tasks_left``, and
   ``max_epochs * n_k``; subtract it from ``B_left``;
3. ``p_k = allocation_k / sum_j allocation_j`` (constant over steps).

Small tasks are thus capped at ``max_epochs`` passes and the budget they leave goes uniformly to the larger
ones.  ``budget`` defaults to ``total_steps * examples_per_step``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import TaskSampler, register


def unimax_allocation(sizes: np.ndarray, budget: float, max_epochs: float) -> np.ndarray:
    """Examples allocated to each task by the UniMax procedure above."""
    allocation = np.zeros(len(sizes), dtype=np.float64)
    budget_left = float(budget)
    order = np.argsort(sizes, kind="stable")
    for position, k in enumerate(order):
        share = budget_left / (len(order) - position)
        allocation[k] = min(share, max_epochs * float(sizes[k]))
        budget_left -= allocation[k]
    return allocation


@register("unimax")
class UnimaxSampler(TaskSampler):
    """UniMax with ``max_epochs`` (default 1) and a budget in examples (default ``total_steps * examples_per_step``)."""

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        max_epochs: float = 1.0,
        budget: int | None = None,
        examples_per_step: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(sizes, **kwargs)
        if budget is None:
            if self.total_steps is None:
                raise ValueError("unimax sampler needs a budget or total_steps")
            budget = self.total_steps * examples_per_step
        if budget < 1:
            raise ValueError(f"unimax sampler: budget must be >= 1, got {budget}")
        if not max_epochs > 0:
            raise ValueError(f"unimax sampler: max_epochs must be > 0, got {max_epochs}")
        self.max_epochs = float(max_epochs)
        self.budget = int(budget)
        allocation = unimax_allocation(self.sizes, self.budget, self.max_epochs)
        self._probabilities = allocation / allocation.sum()

    def probabilities(self, step: int) -> np.ndarray:
        return self._probabilities.copy()
