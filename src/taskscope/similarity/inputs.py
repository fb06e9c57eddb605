"""Input handling shared by every measure: conversion, row checks, non-finite rows, constant sides.

Order of operations in :func:`prepare_pair`:

1. convert each side to a ``torch.Tensor`` on its own device (numpy arrays become CPU tensors, no copy);
2. check shapes: at least 2-D ``(..., n, d)``, the same ``n`` on both sides (row ``i`` is input ``i``
   on both sides), leading shapes that broadcast;
3. non-finite values: ``nan_policy="raise"`` stops with the positions; ``"drop_rows"`` drops every row
   that is non-finite on *either* side (and, for stacks, at any leading position) from *both* sides,
   so the row correspondence survives;
4. check ``n`` against the estimator's minimum.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch

NanPolicy = Literal["raise", "drop_rows"]
Precision = Literal["fast", "float64"]


class SimilarityWarning(UserWarning):
    """A similarity value is undefined (returned as NaN) or not trustworthy."""


def as_tensor(value: object, name: str) -> torch.Tensor:
    """``numpy`` array / ``torch`` tensor / nested list -> floating ``torch.Tensor`` (device kept)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        array = np.asarray(value)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise TypeError(f"{name}: expected a numeric array, got dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise TypeError(f"{name}: complex values are not supported")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.ndim < 2:
        raise ValueError(f"{name}: expected shape (..., n, d) with at least 2 dimensions, got {tuple(tensor.shape)}")
    return tensor


def min_rows(debiased: bool) -> int:
    """Smallest ``n`` for which the estimator is defined: 4 for unbiased HSIC (``n(n-3)``), else 2."""
    return 4 if debiased else 2


def check_rows(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} inputs (rows), got n={n}")


def all_finite(x: torch.Tensor) -> bool:
    """Cheap exact screen: a column sum is finite unless the column holds NaN/inf (or overflows, which
    only sends the caller to the exact row check :func:`finite_rows`)."""
    return bool(torch.isfinite(x.sum(dim=-2)).all())


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """``(..., n, d)`` -> ``(n,)`` bool: row ``i`` is finite at every leading position and feature."""
    finite = torch.isfinite(x).all(dim=-1)
    return finite.reshape(-1, x.shape[-2]).all(dim=0)


def prepare_pair(
    x: object,
    y: object,
    *,
    nan_policy: NanPolicy = "raise",
    minimum_rows: int = 2,
    what: str = "similarity",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert and check ``X (..., n, d1)``, ``Y (..., n, d2)``; see the module docstring for the order."""
    xt, yt = as_tensor(x, "X"), as_tensor(y, "Y")
    if xt.shape[-2] != yt.shape[-2]:
        raise ValueError(
            f"X has {xt.shape[-2]} rows (inputs) but Y has {yt.shape[-2]}; row i must be the same input on both "
            f"sides (shapes {tuple(xt.shape)} and {tuple(yt.shape)})"
        )
    try:
        torch.broadcast_shapes(xt.shape[:-2], yt.shape[:-2])
    except RuntimeError as err:
        raise ValueError(
            f"leading shapes of X {tuple(xt.shape[:-2])} and Y {tuple(yt.shape[:-2])} do not broadcast"
        ) from err
    if yt.device != xt.device:
        yt = yt.to(xt.device)
    keep = None if all_finite(xt) and all_finite(yt) else finite_rows(xt) & finite_rows(yt)
    if keep is not None and not bool(keep.all()):
        bad = (~keep).nonzero().flatten().tolist()
        if nan_policy == "raise":
            sides = [s for s, t in (("X", xt), ("Y", yt)) if not bool(torch.isfinite(t).all())]
            raise ValueError(
                f"{' and '.join(sides)} contain NaN/inf in rows {bad[:10]}{' ...' if len(bad) > 10 else ''} "
                f"({len(bad)} rows); pass nan_policy='drop_rows' to drop these rows from both sides"
            )
        if nan_policy != "drop_rows":
            raise ValueError(f"nan_policy must be 'raise' or 'drop_rows', got {nan_policy!r}")
        warnings.warn(f"dropping {len(bad)} non-finite rows {bad[:10]} from both X and Y", SimilarityWarning,
                      stacklevel=3)
        xt, yt = xt[..., keep, :], yt[..., keep, :]
    check_rows(xt.shape[-2], minimum_rows, what)
    return xt, yt


def constant_positions(x: torch.Tensor) -> torch.Tensor:
    """``(..., n, d)`` -> ``(...)`` bool: every column is constant over the rows (zero variance, nothing to compare)."""
    return (x.amax(dim=-2) == x.amin(dim=-2)).all(dim=-1)


def largest_magnitude(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """``max |x|`` over the last two dimensions, without an ``|x|`` copy (two fast reductions)."""
    return torch.maximum(x.amax(dim=(-2, -1), keepdim=keepdim), -x.amin(dim=(-2, -1), keepdim=keepdim))


def warn_undefined(count: int, reason: str) -> None:
    warnings.warn(f"{count} value(s) undefined and returned as NaN: {reason}", SimilarityWarning, stacklevel=3)


def to_output(values: torch.Tensor) -> float | np.ndarray:
    """float64 result -> ``float`` for a scalar, else a numpy array of the leading shape."""
    array = values.detach().to("cpu", torch.float64).numpy()
    return float(array) if array.ndim == 0 else array
