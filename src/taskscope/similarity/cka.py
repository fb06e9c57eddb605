"""Centred kernel alignment (Kornblith et al. 2019), batched, with each Gram matrix computed once.

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` = cosine of the centred Gram matrices
(double centring for the biased estimator, U-centring for the debiased one, see :mod:`.hsic`).

Order of operations in :func:`cka`:

1. :func:`~.inputs.prepare_pair`: convert, check rows, handle non-finite rows, check ``n``;
2. linear + biased + ``space="auto"`` picks the feature space (``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F
   ||Yc^T Yc||_F)``, cost ``n(d1 d2 + d1^2 + d2^2)``) when it is cheaper than the Gram space
   (cost ``n^2 (d1 + d2)``); both give the same value;
3. Gram space: per chunk of leading positions, each side's Gram stack (:mod:`.kernels`: centred
   in float64, scaled by its largest value, float32 products in ``precision="fast"``, float64 in
   ``"float64"``), centred and scaled to unit Frobenius norm in float64, then one float64 inner
   product per pair;
4. positions where a side is exactly constant (zero variance) or a centred Gram is zero become NaN
   with a :class:`~.inputs.SimilarityWarning`.

When the leading shapes differ they broadcast: each side's Grams are computed once over its own
leading shape, then every broadcast pair is a float64 inner product.  :func:`cka_grid` compares
every stack of one list with every stack of another (MOSSA: several experimental models against one
control model per task and layer) and chunks over the shared leading positions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from taskscope.similarity.hsic import centre
from taskscope.similarity.inputs import (
    NanPolicy,
    Precision,
    SimilarityWarning,
    all_finite,
    as_tensor,
    check_rows,
    finite_rows,
    largest_magnitude,
    min_rows,
    prepare_pair,
    to_output,
    warn_undefined,
)
from taskscope.similarity.kernels import Kernel, centred_data, compute_dtype, get_kernel

Space = Literal["auto", "gram", "feature"]
CHUNK_BYTES = 1 << 28  # working memory per chunk of leading positions


def _positions_per_chunk(n: int, d: int, stacks: int) -> int:
    per_position = stacks * (6 * 8 * n * n + 8 * n * d)
    return max(1, CHUNK_BYTES // per_position)


def unit_centred_grams(
    x: torch.Tensor, kernel: Kernel, debiased: bool, precision: Precision = "fast"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., n, d)`` -> (float64 centred Grams of unit Frobenius norm ``(..., n, n)``, bool undefined ``(...)``).

    Undefined: the side is exactly constant over the rows (:func:`~.kernels.centred_data`), or its
    centred Gram is zero / not finite (NaN there).  The centred Gram is divided by its largest
    absolute entry before its norm is taken, so Gram values up to the float64 limit do not overflow
    the sum of squares.
    """
    data = centred_data(x, precision)
    centred = centre(kernel.gram_centred(data), debiased, inplace=True)  # the kernel's Gram is ours to overwrite
    peak = largest_magnitude(centred)
    bad = data.constant | ~(torch.isfinite(peak) & (peak > 0))
    centred.div_(torch.where(bad, 1.0, peak)[..., None, None])
    norm = torch.linalg.vector_norm(centred, dim=(-2, -1))
    return centred.div_(torch.where(bad, torch.nan, norm)[..., None, None]), bad


def _feature_space_linear(x: torch.Tensor, y: torch.Tensor, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """Biased linear CKA in feature space for one chunk ``(m, n, d1)``, ``(m, n, d2)`` -> ``(m,)``, undefined.

    Uses the scaled centred rows of :func:`~.kernels.centred_data` (CKA is scale invariant)."""
    cx, cy = centred_data(x, precision), centred_data(y, precision)

    def sq_norm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a.mT, b).to(torch.float64).square().sum(dim=(-2, -1))

    denom = (sq_norm(cx.rows, cx.rows) * sq_norm(cy.rows, cy.rows)).sqrt()
    bad = ~(denom > 0) | cx.constant | cy.constant
    return sq_norm(cx.rows, cy.rows) / torch.where(bad, torch.nan, denom), bad


def _use_feature_space(space: Space, kernel: Kernel, debiased: bool, n: int, d1: int, d2: int) -> bool:
    if space not in ("auto", "gram", "feature"):
        raise ValueError(f"space must be 'auto', 'gram' or 'feature', got {space!r}")
    linear_biased = kernel.name == "linear" and not debiased
    if space == "feature" and not linear_biased:
        raise ValueError("space='feature' exists for the biased linear kernel only")
    if space == "auto":
        return linear_biased and n * (d1 * d2 + d1 * d1 + d2 * d2) < n * n * (d1 + d2)
    return space == "feature"


def _paired(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, debiased: bool, precision: Precision,
            feature: bool) -> tuple[torch.Tensor, int]:
    """Equal leading shapes: chunk over positions, both sides' Grams per chunk."""
    lead, n = x.shape[:-2], x.shape[-2]
    xf, yf = x.reshape(-1, n, x.shape[-1]), y.reshape(-1, n, y.shape[-1])
    step = _positions_per_chunk(n, max(x.shape[-1], y.shape[-1]), 2)
    values, undefined = [], 0
    for start in range(0, xf.shape[0], step):
        xs, ys = xf[start:start + step], yf[start:start + step]
        if feature:
            value, bad = _feature_space_linear(xs, ys, precision)
            bad_count = int(bad.sum())
        else:
            ux, bad_x = unit_centred_grams(xs, kernel, debiased, precision)
            uy, bad_y = unit_centred_grams(ys, kernel, debiased, precision)
            value = (ux * uy).sum(dim=(-2, -1))
            bad_count = int((bad_x | bad_y).sum())
        values.append(value)
        undefined += bad_count
    return torch.cat(values).reshape(lead), undefined


def _unit_stack(x: torch.Tensor, kernel: Kernel, debiased: bool, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """All positions of one side, computed in chunks -> ``(P, n, n)``, ``(P,)`` over its flattened leading shape."""
    n = x.shape[-2]
    flat = x.reshape(-1, n, x.shape[-1])
    step = _positions_per_chunk(n, x.shape[-1], 1)
    parts = [unit_centred_grams(flat[s:s + step], kernel, debiased, precision) for s in range(0, flat.shape[0], step)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _broadcast(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, debiased: bool,
               precision: Precision) -> tuple[torch.Tensor, int]:
    """Different leading shapes: each side's Grams once, then every broadcast pair."""
    lead = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    ux, bad_x = _unit_stack(x, kernel, debiased, precision)
    uy, bad_y = _unit_stack(y, kernel, debiased, precision)

    def index(shape: torch.Size) -> torch.Tensor:
        return torch.arange(int(np.prod(shape, dtype=np.int64)), device=ux.device).reshape(shape).broadcast_to(lead).flatten()

    ix, iy = index(x.shape[:-2]), index(y.shape[:-2])
    n = x.shape[-2]
    step = _positions_per_chunk(n, 0, 2)
    values = torch.cat([(ux[ix[s:s + step]] * uy[iy[s:s + step]]).sum(dim=(-2, -1)) for s in range(0, ix.numel(), step)])
    return values.reshape(lead), int((bad_x[ix] | bad_y[iy]).sum())


def cka(
    X: object,
    Y: object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    precision: Precision = "fast",
    space: Space = "auto",
    nan_policy: NanPolicy = "raise",
    **kernel_args: object,
) -> float | np.ndarray:
    """CKA between ``X (..., n, d1)`` and ``Y (..., n, d2)`` (numpy or torch, any float dtype, CPU or CUDA).

    Returns a ``float`` for 2-D inputs, else a float64 numpy array of the broadcast leading shape.
    ``kernel``: ``"linear"``, ``"rbf"`` (``sigma_scale=1.0`` or ``sigma=``), ``"poly"`` (``degree=3,
    coef0=1.0, gamma=1/d``).  ``debiased`` uses unbiased HSIC (Song et al. 2012; needs ``n >= 4``).
    ``precision="fast"`` computes the ``O(n^2 d)`` products in float32 on centred data and everything
    after in float64 (|error| <= 1e-5 against float64, see docs/similarity.md); ``"float64"`` is exact.
    ``nan_policy="drop_rows"`` drops rows non-finite on either side from both sides.
    """
    kern = get_kernel(kernel, **kernel_args)
    compute_dtype(precision)  # validates before any work
    x, y = prepare_pair(X, Y, nan_policy=nan_policy, minimum_rows=min_rows(debiased),
                        what="debiased CKA" if debiased else "CKA")
    n, d1, d2 = x.shape[-2], x.shape[-1], y.shape[-1]
    feature = _use_feature_space(space, kern, debiased, n, d1, d2)
    if x.shape[:-2] == y.shape[:-2]:
        values, undefined = _paired(x, y, kern, debiased, precision, feature)
    else:
        if feature and space == "feature":
            raise ValueError("space='feature' needs equal leading shapes; broadcasting uses the Gram space")
        values, undefined = _broadcast(x, y, kern, debiased, precision)
    if undefined:
        warn_undefined(undefined, "a representation is constant over the inputs (zero variance) or its centred "
                                  "Gram matrix is zero (e.g. RBF median distance 0)")
    return to_output(values.clamp(max=1.0) if feature else values)


def _as_stack_list(stacks: object, name: str) -> list[torch.Tensor]:
    if isinstance(stacks, (list, tuple)):
        return [as_tensor(s, f"{name}[{i}]") for i, s in enumerate(stacks)]
    tensor = as_tensor(stacks, name)
    if tensor.ndim < 3:
        raise ValueError(f"{name}: a single array must have shape (models, ..., n, d), got {tuple(tensor.shape)}")
    return list(tensor.unbind(0))


def cka_grid(
    Xs: Sequence[object] | object,
    Ys: Sequence[object] | object,
    kernel: str = "linear",
    debiased: bool = False,
    *,
    precision: Precision = "fast",
    nan_policy: NanPolicy = "raise",
    **kernel_args: object,
) -> np.ndarray:
    """CKA of every ``Xs[a]`` with every ``Ys[b]`` -> float64 array ``(len(Xs), len(Ys), *lead)``.

    ``Xs``/``Ys``: sequences of stacks ``(*lead, n, d_i)`` with one ``lead`` and one ``n`` (widths may
    differ), or arrays ``(models, *lead, n, d)``.  Order: per chunk of leading positions, the unit
    centred Gram of every stack (each once), then all ``a x b`` pairs as one batched float64 product.
    ``nan_policy="drop_rows"`` drops a row non-finite in any stack from all stacks.
    """
    kern = get_kernel(kernel, **kernel_args)
    compute_dtype(precision)  # validates before any work
    xs, ys = _as_stack_list(Xs, "Xs"), _as_stack_list(Ys, "Ys")
    stacks = xs + ys
    if not xs or not ys:
        raise ValueError("cka_grid needs at least one stack on each side")
    lead, n = stacks[0].shape[:-2], stacks[0].shape[-2]
    for i, s in enumerate(stacks):
        if s.shape[:-2] != lead or s.shape[-2] != n:
            side, j = ("Xs", i) if i < len(xs) else ("Ys", i - len(xs))
            raise ValueError(f"{side}[{j}] has shape {tuple(s.shape)}; expected (*{tuple(lead)}, {n}, d) like the first stack")
    device = stacks[0].device
    stacks = [s.to(device) for s in stacks]
    keep = None if all(all_finite(s) for s in stacks) else torch.stack([finite_rows(s) for s in stacks]).all(dim=0)
    if keep is not None and not bool(keep.all()):
        bad_rows = (~keep).nonzero().flatten().tolist()
        if nan_policy != "drop_rows":
            names = [f"Xs[{i}]" for i, s in enumerate(xs) if not bool(torch.isfinite(s).all())]
            names += [f"Ys[{i}]" for i, s in enumerate(ys) if not bool(torch.isfinite(s).all())]
            raise ValueError(f"{', '.join(names)} contain NaN/inf in rows {bad_rows[:10]}; pass "
                             f"nan_policy='drop_rows' to drop these rows from every stack")
        warnings.warn(f"dropping {len(bad_rows)} non-finite rows {bad_rows[:10]} from every stack",
                      SimilarityWarning, stacklevel=2)
        stacks = [s[..., keep, :] for s in stacks]
    check_rows(stacks[0].shape[-2], min_rows(debiased), "debiased CKA" if debiased else "CKA")
    n = stacks[0].shape[-2]
    flat = [s.reshape(-1, n, s.shape[-1]) for s in stacks]
    positions = flat[0].shape[0]
    step = _positions_per_chunk(n, max(s.shape[-1] for s in stacks), len(stacks))
    values, undefined = [], 0
    for start in range(0, positions, step):
        units, bads = zip(*(unit_centred_grams(f[start:start + step], kern, debiased, precision) for f in flat))
        rows = [u.flatten(-2).unsqueeze(-2) for u in units[:len(xs)]]   # views (m, 1, n*n), no copies
        cols = [u.flatten(-2).unsqueeze(-1) for u in units[len(xs):]]   # views (m, n*n, 1)
        values.append(torch.stack([torch.stack([torch.bmm(r, c)[:, 0, 0] for c in cols], dim=1)
                                   for r in rows], dim=1))              # (m, a, b)
        bx, by = torch.stack(bads[:len(xs)], dim=1), torch.stack(bads[len(xs):], dim=1)
        undefined += int((bx[:, :, None] | by[:, None, :]).sum())
    if undefined:
        warn_undefined(undefined, "a representation is constant over the inputs (zero variance) or its centred "
                                  "Gram matrix is zero")
    grid = torch.cat(values).permute(1, 2, 0).reshape(len(xs), len(ys), *lead)
    return np.asarray(to_output(grid))
