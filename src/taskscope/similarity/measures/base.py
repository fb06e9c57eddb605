"""Measure base class, the ``MEASURES`` registry by short id, and :func:`similarity`.

A measure compares ``X (n, d1)`` with ``Y (n, d2)`` (row ``i`` = input ``i`` on both sides).  Order of
operations in :meth:`Measure.__call__`: :func:`~taskscope.similarity.inputs.prepare_pair` (conversion,
row checks, non-finite rows), float64 on the input's device, then :meth:`Measure.compute` per leading
position for stacks ``(..., n, d)`` (returning an array of the leading shape).  A constant side gives
NaN with a warning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

import numpy as np
import torch

from taskscope.registry import Registry
from taskscope.similarity.inputs import (
    NanPolicy,
    constant_positions,
    prepare_pair,
    warn_undefined,
)

MEASURES: Registry[type[Measure]] = Registry("measure", entry_point_group="taskscope.measures")
M = TypeVar("M", bound=type["Measure"])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: ``MEASURES.register(name)``."""
    return MEASURES.register(name)


class Measure(ABC):
    """One representation similarity (or distance) measure with explicit parameters."""

    name: ClassVar[str] = ""
    higher_is_similar: ClassVar[bool] = True
    min_rows: ClassVar[int] = 2

    def __init__(self, *, nan_policy: NanPolicy = "raise") -> None:
        self.nan_policy = nan_policy

    @abstractmethod
    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Two checked float64 matrices ``(n, d1)``, ``(n, d2)``, neither constant -> value."""

    def __call__(self, X: object, Y: object) -> float | np.ndarray:
        x, y = prepare_pair(X, Y, nan_policy=self.nan_policy, minimum_rows=self.min_rows, what=f"measure {self.name!r}")
        lead = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
        x = x.to(torch.float64).broadcast_to(*lead, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
        y = y.to(torch.float64).broadcast_to(*lead, *y.shape[-2:]).reshape(-1, *y.shape[-2:])
        constant = (constant_positions(x) | constant_positions(y)).tolist()
        if any(constant):
            warn_undefined(sum(constant), f"{self.name}: a representation is constant over the inputs")
        values = np.array([np.nan if c else self.compute(a, b) for a, b, c in zip(x, y, constant)], dtype=np.float64)
        return float(values[0]) if len(lead) == 0 else values.reshape(tuple(lead))


def get_measure(measure: str, **params: object) -> Measure:
    cls = MEASURES.lookup(measure)
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"measure {measure!r}: {err}") from None


def similarity(X: object, Y: object, measure: str = "cka", **params: object) -> float | np.ndarray:
    """``MEASURES[measure](**params)(X, Y)``; see each measure for its parameters and direction."""
    return get_measure(measure, **params)(X, Y)
