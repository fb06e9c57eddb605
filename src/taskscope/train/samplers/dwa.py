"""Dynamic Weight Average (Liu et al. 2019, as in LibMTL ``weighting/DWA.py``) turned into task probabilities.

Training steps are cut into windows of ``window`` steps: window ``w`` holds steps ``[w*window, (w+1)*window)``.
Order of operations:

1. ``observe(k, loss, s)`` adds ``loss`` to task ``k``'s sum in window ``s // window``;
2. when a step of a later window arrives (in ``observe`` or ``probabilities``) the open window is closed: each
   task's average ``L̄_k`` is its loss sum / count, and a task not observed in that window keeps its previous
   average (it never had one: stays unknown);
3. ``probabilities(s)`` with at least two closed windows: ``w_k = L̄_k(t-1) / L̄_k(t-2)`` over the last two
   closed windows (``w_k = 1`` while a task lacks either average), then ``p_k = softmax(w / T)_k``; before two
   windows are closed it is uniform.

``temperature`` defaults to 1 as in the paper (LibMTL's default is 2).  Task sizes are not used.  Losses must be
finite, and steps may not go back to a closed window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import TaskSampler, normalise_log_weights, register


@register("dwa")
class DWASampler(TaskSampler):
    """Tasks whose windowed training loss falls slowest are drawn most often."""

    def __init__(self, sizes: Sequence[int], *, window: int = 100, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(sizes, **kwargs)
        if window < 1:
            raise ValueError(f"dwa sampler: window must be >= 1 step, got {window}")
        if not temperature > 0:
            raise ValueError(f"dwa sampler: temperature must be > 0, got {temperature}")
        self.window = int(window)
        self.temperature = float(temperature)
        self._open_window = 0
        self._closed_windows = 0
        self._loss_sum = np.zeros(self.num_tasks)
        self._loss_count = np.zeros(self.num_tasks, dtype=np.int64)
        self._average_before_last = np.full(self.num_tasks, np.nan)
        self._average_last = np.full(self.num_tasks, np.nan)

    def _advance_to(self, step: int) -> None:
        """Close every window before the one holding ``step`` (step 2 of the module docstring)."""
        target = step // self.window
        if target < self._open_window:
            raise ValueError(f"dwa sampler: step {step} is in window {target}, already closed (open: {self._open_window})")
        while self._open_window < target:
            observed = self._loss_count > 0
            averages = self._average_last.copy()
            averages[observed] = self._loss_sum[observed] / self._loss_count[observed]
            self._average_before_last, self._average_last = self._average_last, averages
            self._loss_sum[:] = 0.0
            self._loss_count[:] = 0
            self._open_window += 1
            self._closed_windows += 1

    def observe(self, task_index: int, loss: float, step: int) -> None:
        if not 0 <= task_index < self.num_tasks:
            raise IndexError(f"dwa sampler: task index {task_index} out of range for {self.num_tasks} tasks")
        if not math.isfinite(loss):
            raise ValueError(f"dwa sampler: non-finite loss {loss} for task {self.task_names[task_index]!r} at step {step}")
        self._advance_to(step)
        self._loss_sum[task_index] += float(loss)
        self._loss_count[task_index] += 1

    def loss_ratios(self, step: int) -> np.ndarray:
        """``w_k = L̄_k(t-1) / L̄_k(t-2)``, 1 where a task lacks either average."""
        self._advance_to(step)
        ratios = self._average_last / self._average_before_last
        return np.where(np.isfinite(ratios), ratios, 1.0)

    def probabilities(self, step: int) -> np.ndarray:
        ratios = self.loss_ratios(step)
        if self._closed_windows < 2:
            return np.full(self.num_tasks, 1.0 / self.num_tasks)
        return normalise_log_weights(ratios / self.temperature)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "open_window": self._open_window,
            "closed_windows": self._closed_windows,
            "loss_sum": self._loss_sum.tolist(),
            "loss_count": self._loss_count.tolist(),
            "average_before_last": _nan_to_none(self._average_before_last),
            "average_last": _nan_to_none(self._average_last),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._open_window = int(state["open_window"])
        self._closed_windows = int(state["closed_windows"])
        self._loss_sum = np.asarray(state["loss_sum"], dtype=np.float64)
        self._loss_count = np.asarray(state["loss_count"], dtype=np.int64)
        self._average_before_last = _none_to_nan(state["average_before_last"])
        self._average_last = _none_to_nan(state["average_last"])


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: unknown averages are stored as ``None``."""
    return [None if math.isnan(v) else float(v) for v in values]


def _none_to_nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
