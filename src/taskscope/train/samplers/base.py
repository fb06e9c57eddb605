"""The `TaskSampler` base class, the `SAMPLERS` registry and `make_sampler`.

A sampler chooses which task the next training batch comes from.  Per step ``s`` the training loop calls

1. ``sample(s)``: computes ``P_s = probabilities(s)`` and draws a task index from it with the sampler's own
   seeded ``numpy.random.Generator`` (never the global RNG);
2. ``observe(k, loss, s)`` after the step, with the training loss of task ``k`` (a no-op except for
   loss-driven samplers such as DWA);
3. ``log_record(s)`` whenever it logs, to record ``P_s`` by task name.

``state_dict()`` holds everything needed for exact resume (the RNG state and any loss statistics) as plain
JSON-serialisable Python values; ``load_state_dict`` restores it, after which future draws are identical.

Task sizes are capped first: ``n_k = min(N_k, cap)`` (``cap=None`` means no cap).  A task of size 0 is an
error, since it could never supply an example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from taskscope.registry import Registry

# the training loop passes sizes, seed, cap, total_steps and task names itself; the rest is `sampler_kwargs`
SAMPLERS: Registry[type[TaskSampler]] = Registry(
    "sampler", entry_point_group="taskscope.samplers",
    reserved=("sizes", "seed", "cap", "total_steps", "task_names"),
)


def register(name: str) -> Callable[[type[TaskSampler]], type[TaskSampler]]:
    """Class decorator: add a `TaskSampler` subclass to `SAMPLERS` under ``name``."""
    return SAMPLERS.register(name)


def make_sampler(name: str, sizes: Sequence[int], *, seed: int = 0, **kwargs: Any) -> TaskSampler:
    """Build the sampler registered as ``name`` for tasks of the given sizes."""
    return SAMPLERS.lookup(name)(sizes, seed=seed, **kwargs)


class TaskSampler(ABC):
    """Base class: seeded draws from a per-step distribution over tasks.

    Parameters
    ----------
    sizes: number of training examples ``N_k`` of each task, in task-index order.
    cap: per-task cap applied before anything else, ``n_k = min(N_k, cap)``; ``None`` for no cap.
    seed: seed of the sampler's private ``numpy.random.Generator``.
    total_steps: number of training steps ``S`` (needed by schedules such as reverse annealing and by unimax).
    task_names: names used in `log_record` and error messages (default ``task0, task1, ...``).
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        cap: int | None = None,
        seed: int = 0,
        total_steps: int | None = None,
        task_names: Sequence[str] | None = None,
    ) -> None:
        names = [f"task{k}" for k in range(len(sizes))] if task_names is None else [str(n) for n in task_names]
        if len(sizes) == 0:
            raise ValueError(f"{type(self).__name__}: no tasks to sample from (sizes is empty)")
        if len(names) != len(sizes):
            raise ValueError(f"{type(self).__name__}: {len(names)} task names for {len(sizes)} task sizes")
        if cap is not None and cap < 1:
            raise ValueError(f"{type(self).__name__}: cap must be >= 1 or None, got {cap}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"{type(self).__name__}: total_steps must be >= 1 or None, got {total_steps}")
        for name, size in zip(names, sizes):
            if int(size) != size or size < 1:
                raise ValueError(f"{type(self).__name__}: task {name!r} has size {size}; every task needs >= 1 example")
        raw = np.asarray(sizes, dtype=np.float64)
        self.sizes: np.ndarray = raw if cap is None else np.minimum(raw, float(cap))
        self.cap = cap
        self.seed = seed
        self.total_steps = total_steps
        self.task_names: list[str] = names
        self._rng = np.random.default_rng(seed)

    @property
    def num_tasks(self) -> int:
        return len(self.sizes)

    @abstractmethod
    def probabilities(self, step: int) -> np.ndarray:
        """``P_step``: a float64 vector over tasks that sums to 1."""

    def sample(self, step: int) -> int:
        """Draw one task index from ``probabilities(step)`` with the sampler's own generator."""
        return int(self._rng.choice(self.num_tasks, p=self.probabilities(step)))

    def observe(self, task_index: int, loss: float, step: int) -> None:
        """Receive the training loss of task ``task_index`` at ``step``; ignored unless a subclass uses it."""

    def log_record(self, step: int) -> dict[str, Any]:
        """A JSON-ready record of ``P_step``: ``{"step", "sampler", "p": {task name: probability}}``."""
        p = self.probabilities(step)
        return {"step": step, "sampler": self.name, "p": dict(zip(self.task_names, map(float, p)))}

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state for checkpoints: the sampler name, the RNG state and subclass statistics."""
        return {"sampler": self.name, "num_tasks": self.num_tasks, "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; the sampler must have been built with the same name and number of tasks."""
        if state.get("sampler") != self.name or state.get("num_tasks") != self.num_tasks:
            raise ValueError(
                f"sampler state is for {state.get('sampler')!r} over {state.get('num_tasks')} tasks, "
                f"not {self.name!r} over {self.num_tasks}"
            )
        self._rng.bit_generator.state = state["rng"]


def normalise_log_weights(log_weights: np.ndarray) -> np.ndarray:
    """Softmax of log-weights computed stably in float64 (subtract the maximum, exponentiate, normalise)."""
    shifted = np.asarray(log_weights, dtype=np.float64) - np.max(log_weights)
    weights = np.exp(shifted)
    return weights / weights.sum()
