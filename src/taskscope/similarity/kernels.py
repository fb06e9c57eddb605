"""Kernels for CKA: linear, RBF (median heuristic over distinct pairs), polynomial; registry by short id.

Every kernel maps a stack ``X (..., n, d)`` to float64 Gram matrices ``(..., n, n)``.  Order of
operations (:func:`centred_data`, then :meth:`Kernel.gram_centred`):

1. the column means are subtracted: for float64 input (or ``precision="float64"``) taken with
   float64 accumulation and subtracted in float64; for float32 / float16 / bfloat16 input in
   float32 in two passes (subtract the float32 mean, then the mean of what is left, which is
   small, so its rounding is relative to the spread, not to the offset; the mean kept is the sum
   of both in float64), ~20x cheaper than a float64 reduction of the whole stack;
2. exactly constant positions are found (a cheap screen: the spread left after centring is below
   ``1e-9`` of the largest mean; only there the exact ``max == min`` test runs) and their centred
   rows set to 0, so a constant side gives a zero centred Gram (NaN CKA, with a warning) and never
   rounding residue scaled up to a value;
3. each position whose largest absolute centred value ``s`` lies outside :data:`SAFE_SCALES` is
   divided by ``s`` (elsewhere ``s = 1``: the float32 products of such values neither overflow nor
   underflow, and a division would only cost a pass over the data), then cast to the compute dtype
   (float32 in ``precision="fast"``, float64 in ``"float64"``), so the products neither overflow
   nor underflow (any ``|x|`` from about 1e-150 to 1e150 in float64);
4. the dot products of the scaled centred rows are batched matrix products in the compute dtype
   (:func:`symmetric_gram`, the only ``O(n^2 d)`` step), cast to float64 and multiplied back by ``s^2``;
5. the kernel is evaluated from ``G = Xc Xc^T`` in float64: linear uses ``G`` itself (a Gram matrix
   of the raw rows differs from ``G`` only by row/column terms that every HSIC centring removes),
   RBF uses the squared distances ``G_ii + G_jj - 2 G_ij`` (translation invariant), polynomial adds
   back the mean through float64 rank-one terms ``x_i . x_j = m . m + (G_ij + xc_i . m + m . xc_j)``
   and is expanded around ``m . m`` without its constant term (see :class:`PolynomialKernel`).

Centring before the float32 product keeps float32 rounding relative to the spread of the data, not
to its (often huge, for LLM hidden states) mean.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from taskscope.registry import Registry
from taskscope.similarity.inputs import Precision, largest_magnitude

KERNELS: Registry[type[Kernel]] = Registry("kernel", entry_point_group="taskscope.kernels")
K = TypeVar("K", bound=type["Kernel"])
SAFE_SCALES = (2.0 ** -30, 2.0 ** 30)  # spreads whose float32 products (d <= 2^20 terms) need no rescaling


def register_kernel(name: str) -> Callable[[K], K]:
    """Class decorator: ``KERNELS.register(name)``."""
    return KERNELS.register(name)


def get_kernel(name: str, **kernel_args: object) -> Kernel:
    """``"rbf", sigma_scale=0.5`` -> ``RBFKernel(sigma_scale=0.5)``; unknown ids and arguments raise."""
    cls = KERNELS.lookup(name)
    try:
        return cls(**kernel_args)
    except TypeError as err:
        raise TypeError(f"kernel {name!r}: {err}") from None


def compute_dtype(precision: Precision) -> torch.dtype:
    if precision == "fast":
        return torch.float32
    if precision == "float64":
        return torch.float64
    raise ValueError(f"precision must be 'fast' or 'float64', got {precision!r}")


@dataclass(frozen=True)
class CentredData:
    """A stack after steps 1-3 of the module docstring.

    ``rows``: centred rows divided by ``scale``, in the compute dtype ``(..., n, d)``; ``scale``:
    float64 ``(...)`` (1 where the position is constant or its spread lies in :data:`SAFE_SCALES`); ``mean``: the subtracted column means,
    float64 ``(..., 1, d)``; ``constant``: bool ``(...)``, every column constant over the rows.
    """

    rows: torch.Tensor
    scale: torch.Tensor
    mean: torch.Tensor
    constant: torch.Tensor

    def dots(self) -> torch.Tensor:
        """float64 ``Xc Xc^T (..., n, n)``: :func:`symmetric_gram` in the compute dtype, scaled back."""
        scaled = symmetric_gram(self.rows).to(torch.float64)
        return scaled.mul_(self.scale.square()[..., None, None]) if bool((self.scale != 1.0).any()) else scaled


GRAM_BLOCK_ROWS = 24  # smallest row block of symmetric_gram (smaller blocks cost more than the work they save)
GRAM_MAX_BLOCKS = 8
GRAM_ALIGN = 8        # block edges at multiples of 8 rows: the BLAS kernels' register blocking runs them ~7 % faster


def gram_block_edges(n: int) -> list[int]:
    """Row edges of :func:`symmetric_gram`'s ``m = min(8, n // 24)`` blocks, at multiples of 8 (the last at ``n``)."""
    blocks = min(GRAM_MAX_BLOCKS, n // GRAM_BLOCK_ROWS)
    inner = {GRAM_ALIGN * round(i * n / (blocks * GRAM_ALIGN)) for i in range(1, blocks)}
    return [0, *sorted(e for e in inner if 0 < e < n), n]


def symmetric_gram(rows: torch.Tensor) -> torch.Tensor:
    """``rows rows^T`` of a stack ``(..., n, d)`` -> ``(..., n, n)``.

    torch has no symmetric rank-k product (BLAS ``syrk``), and a general one computes both triangles.  On
    CPU the rows are cut into blocks (:func:`gram_block_edges`); block ``i`` is multiplied with the rows from
    its own start on and mirrored, ``1/2 + 1/(2m)`` of the multiply-adds: 1.2-1.4x faster at n 100-1000,
    d 640-4096 on 2 cores (docs/similarity.md).  Elsewhere, or for ``n < 48``, one batched product.
    """
    n = rows.shape[-2]
    edges = gram_block_edges(n)
    if rows.device.type != "cpu" or len(edges) < 3:
        return torch.matmul(rows, rows.mT)
    out = torch.empty((*rows.shape[:-1], n), dtype=rows.dtype, device=rows.device)
    for start, stop in zip(edges[:-1], edges[1:]):
        part = torch.matmul(rows[..., start:stop, :], rows[..., start:, :].mT)   # (..., stop - start, n - start)
        out[..., start:stop, start:] = part
        out[..., start:, start:stop] = part.mT
    return out


def centred_data(x: torch.Tensor, precision: Precision) -> CentredData:
    """``(..., n, d)`` -> :class:`CentredData` (steps 1-3 of the module docstring)."""
    dtype = compute_dtype(precision)
    if x.dtype == torch.float64 or dtype == torch.float64:
        mean = x.mean(dim=-2, keepdim=True, dtype=torch.float64)
        xc = x.to(torch.float64) - mean
    else:
        xc = x.to(torch.float32)
        first = xc.mean(dim=-2, keepdim=True)
        xc = xc - first
        second = xc.mean(dim=-2, keepdim=True)
        xc.sub_(second)
        mean = first.to(torch.float64) + second.to(torch.float64)
    scale = largest_magnitude(xc).to(torch.float64)
    largest_mean = mean.abs().amax(dim=(-2, -1))
    suspicious = ~(scale > 1e-9 * largest_mean)       # includes scale 0 and NaN
    constant = torch.zeros_like(suspicious)
    if bool(suspicious.any()):
        constant_columns = x.amax(dim=-2, keepdim=True) == x.amin(dim=-2, keepdim=True)
        constant = constant_columns.all(dim=(-2, -1))
        xc = xc.masked_fill(constant_columns, 0.0)
        scale = torch.where(suspicious, largest_magnitude(xc).to(torch.float64), scale)
    scale = torch.where((scale > 0) & ~((scale >= SAFE_SCALES[0]) & (scale <= SAFE_SCALES[1])), scale, 1.0)
    if bool((scale != 1.0).any()):
        xc = xc.div_(scale.to(xc.dtype)[..., None, None])    # xc is a new tensor here
    return CentredData(rows=xc.to(dtype), scale=scale, mean=mean, constant=constant)


class Kernel(ABC):
    """A positive-definite kernel evaluated on all row pairs of a stack."""

    name: str = ""
    bounded_by_diagonal: bool = False   # every |k(x, y)| <= max(k(x, x), k(y, y)) (positive semidefinite)

    def gram(self, x: torch.Tensor, precision: Precision = "fast") -> torch.Tensor:
        """``(..., n, d)`` -> float64 ``(..., n, n)`` (up to terms removed by centring, see module doc)."""
        return self.gram_centred(centred_data(x, precision))

    @abstractmethod
    def gram_centred(self, data: CentredData) -> torch.Tensor:
        """The Gram stack from :func:`centred_data`'s output (steps 4-5 of the module docstring)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


@register_kernel("linear")
class LinearKernel(Kernel):
    """``k(x, y) = x . y``; returned as the Gram matrix of the centred rows."""

    bounded_by_diagonal = True

    def gram_centred(self, data: CentredData) -> torch.Tensor:
        return data.dots()


def squared_distances(dots: torch.Tensor) -> torch.Tensor:
    """Float64 dot-product Gram ``(..., n, n)`` -> squared Euclidean distances, clamped at 0, zero diagonal."""
    norms = torch.diagonal(dots, dim1=-2, dim2=-1)
    sq = (norms.unsqueeze(-1) + norms.unsqueeze(-2) - 2.0 * dots).clamp_min_(0.0)
    torch.diagonal(sq, dim1=-2, dim2=-1).zero_()
    return sq


def median_pairwise_distance(sq_distances: torch.Tensor) -> torch.Tensor:
    """Median of ``||x_i - x_j||`` over distinct pairs ``i < j`` (diagonal excluded) -> ``(...)``.

    An even number of pairs averages the two middle values (``numpy.median``).
    """
    n = sq_distances.shape[-1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=sq_distances.device)
    pairs = sq_distances[..., rows, cols].sqrt().sort(dim=-1).values
    m = pairs.shape[-1]
    return 0.5 * (pairs[..., (m - 1) // 2] + pairs[..., m // 2])


@register_kernel("rbf")
class RBFKernel(Kernel):
    """``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``.

    ``sigma = sigma_scale * median{||x_i - x_j|| : i < j}`` per Gram matrix (Kornblith et al. 2019 use
    ``sigma_scale = 1``; their demo code takes the median over all ``n^2`` squared distances, zero
    diagonal included, which shrinks sigma).  A fixed ``sigma`` overrides the heuristic.  A zero
    median (more than half the pairs are duplicates) gives a NaN Gram matrix.  The bandwidth belongs
    to the Gram matrix of the full sample: resampling (:mod:`.uncertainty`) gathers from that matrix
    and never re-estimates it.  Distances are taken in the scaled units of :class:`CentredData`
    (``sigma`` is scaled alike), so huge or tiny inputs neither overflow nor underflow.
    """

    bounded_by_diagonal = True

    def __init__(self, sigma_scale: float = 1.0, sigma: float | None = None) -> None:
        if sigma_scale <= 0 or (sigma is not None and sigma <= 0):
            raise ValueError(f"rbf: sigma_scale and sigma must be > 0, got {sigma_scale}, {sigma}")
        self.sigma_scale = float(sigma_scale)
        self.sigma = None if sigma is None else float(sigma)

    def bandwidth(self, sq_distances: torch.Tensor) -> torch.Tensor:
        """``sigma`` for squared distances ``(..., n, n)`` in the data's own units -> ``(...)``."""
        if self.sigma is not None:
            return torch.full(sq_distances.shape[:-2], self.sigma, dtype=torch.float64, device=sq_distances.device)
        return self.sigma_scale * median_pairwise_distance(sq_distances)

    def gram_centred(self, data: CentredData) -> torch.Tensor:
        scaled = symmetric_gram(data.rows).to(torch.float64)
        sq = squared_distances(scaled)                                   # in units of data.scale^2
        if self.sigma is not None:
            sigma = self.sigma / data.scale
        else:
            sigma = self.bandwidth(sq)
        sigma = torch.where(sigma > 0, sigma, torch.nan)
        return torch.exp(-sq / (2.0 * sigma.square())[..., None, None])


@register_kernel("poly")
class PolynomialKernel(Kernel):
    """``k(x, y) = (gamma x . y + coef0)^degree`` with ``gamma = 1/d`` by default (scikit-learn's
    ``polynomial_kernel``), ``degree = 3``, ``coef0 = 1``; evaluated on the raw (uncentred) rows.

    Written around the mean ``m``: ``x_i . x_j = m . m + t_ij`` with ``t_ij = G_ij + xc_i . m +
    m . xc_j``, ``b = gamma m . m + coef0``, and ``k_ij - b^degree = sum_{j>=1} C(degree, j)
    b^(degree-j) (gamma t_ij)^j`` (Horner).  The constant ``b^degree`` is left out (every centring
    removes it); evaluating it would leave float64 rounding of ``b^degree`` in place of the data when
    the inputs carry a large common offset, or are tiny next to ``coef0``.
    """

    def __init__(self, degree: int = 3, coef0: float = 1.0, gamma: float | None = None) -> None:
        if int(degree) != degree or degree < 1:
            raise ValueError(f"poly: degree must be a positive integer, got {degree}")
        self.degree = int(degree)
        self.coef0 = float(coef0)
        self.gamma = None if gamma is None else float(gamma)

    def gram_centred(self, data: CentredData) -> torch.Tensor:
        xc = data.rows.to(torch.float64) * data.scale[..., None, None]
        shift = torch.matmul(xc, data.mean.mT)                            # (..., n, 1): xc_i . m
        gamma = 1.0 / data.rows.shape[-1] if self.gamma is None else self.gamma
        step = gamma * (data.dots() + shift + shift.mT)                   # gamma t_ij
        base = gamma * data.mean.square().sum(dim=-1, keepdim=True) + self.coef0   # (..., 1, 1)
        out = torch.zeros_like(step)
        for j in range(self.degree, 0, -1):
            out = (out + math.comb(self.degree, j) * base.pow(self.degree - j)) * step
        return out
