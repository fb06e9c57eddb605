"""Task samplers: which task each training step draws from.

Registry `SAMPLERS` (short id -> class) and `make_sampler(name, sizes, *, seed, **kwargs)`; one file per
sampler: ``proportional``, ``uniform``, ``temperature``, ``reverse_annealing``, ``dwa``, ``unimax``.
See docs/samplers.md for the formulas and defaults.
"""

from . import dwa, proportional, reverse_annealing, temperature, uniform, unimax  # noqa: F401  (fill the registry)
from .base import SAMPLERS, TaskSampler, make_sampler, register

__all__ = ["SAMPLERS", "TaskSampler", "make_sampler", "register"]
