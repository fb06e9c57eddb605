"""HSIC estimators on Gram stacks, all in float64, written as inner products of centred Gram matrices.

* biased (Gretton et al. 2005): ``HSIC_b(K, L) = <HKH, HLH>_F / (n - 1)^2`` with ``H = I - 11^T/n``;
* unbiased (Song et al. 2012): ``HSIC_u(K, L) = [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2))
  - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))`` with ``K~`` = ``K`` with a zero diagonal.  It equals
  ``<U(K), U(L)>_F / (n(n-3))`` with the U-centring of Szekely & Rizzo (2014)
  ``U(K)_ij = K~_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2))`` off the diagonal, 0 on it
  (``r = K~ 1``, ``s = 1^T K~ 1``), so ``HSIC_u(K, K) = ||U(K)||^2 / (n(n-3)) >= 0`` and debiased CKA
  is a cosine like biased CKA.

CKA is the cosine of the centred Gram matrices; the normalising constants cancel.  The masked
variants centre on a subset of rows (``mask`` 1 = kept) without gathering, which batches subsets of
different sizes (leave-one-out, de-duplicated bootstrap resamples).
"""

from __future__ import annotations

import torch


def double_centre(gram: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``HKH`` of a symmetric Gram stack: subtract row and column means (equal by symmetry), add back the
    grand mean.  ``inplace`` overwrites ``gram`` (for a Gram matrix the caller owns)."""
    row = gram.mean(dim=-1, keepdim=True)
    column = row.mT - row.mean(dim=-2, keepdim=True)  # (..., 1, n): one pass less than two updates
    out = gram.sub_(row) if inplace else gram - row
    return out.sub_(column)


def u_centre(gram: torch.Tensor) -> torch.Tensor:
    """U-centring (zero diagonal first and last); needs ``n >= 4``."""
    n = gram.shape[-1]
    off = gram.clone()
    torch.diagonal(off, dim1=-2, dim2=-1).zero_()
    row = off.sum(dim=-1, keepdim=True)
    total = row.sum(dim=-2, keepdim=True)
    out = off - row / (n - 2) - row.mT / (n - 2) + total / ((n - 1) * (n - 2))
    torch.diagonal(out, dim1=-2, dim2=-1).zero_()
    return out


def additive_centre(gram: torch.Tensor) -> torch.Tensor:
    """Remove from every entry, the diagonal included, the row and column effects ``a_i + a_j`` that
    U-centring removes (``a = r/(n-2) - s/(2(n-1)(n-2))``, ``r`` the zero-diagonal row sums, ``s = 1'r``):
    off the diagonal the result is :func:`u_centre`'s, so its zero-diagonal row sums are 0; on the
    diagonal it keeps ``gram_ii - 2 a_i``.  Every centring of every sample (subsets and resamples,
    whose duplicate pairs hold diagonal entries) is unchanged by it, since each cancels such effects."""
    n = gram.shape[-1]
    rows = gram.sum(dim=-1, keepdim=True) - torch.diagonal(gram, dim1=-2, dim2=-1).unsqueeze(-1)
    effect = rows / (n - 2) - rows.sum(dim=-2, keepdim=True) / (2 * (n - 1) * (n - 2))
    ones = torch.ones_like(effect)
    # gram - (a 1' + 1 a') as one rank-2 update: a single pass over the matrix, no temporaries
    left, right = torch.cat([effect, ones], dim=-1), torch.cat([ones, effect], dim=-1)
    flat = torch.baddbmm(gram.reshape(-1, n, n), left.reshape(-1, n, 2), right.reshape(-1, n, 2).mT, alpha=-1.0)
    return flat.reshape(gram.shape)


def centre(gram: torch.Tensor, debiased: bool, inplace: bool = False) -> torch.Tensor:
    return u_centre(gram) if debiased else double_centre(gram, inplace)


def hsic_normaliser(n: int, debiased: bool) -> float:
    return float(n * (n - 3)) if debiased else float((n - 1) ** 2)


def frobenius(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<A, B>_F`` over the last two dimensions (broadcasting leading ones)."""
    return (a * b).sum(dim=(-2, -1))


def hsic(k: torch.Tensor, l: torch.Tensor, debiased: bool = False) -> torch.Tensor:
    """HSIC of two float Gram stacks ``(..., n, n)`` -> float64 ``(...)``."""
    k, l = k.to(torch.float64), l.to(torch.float64)
    n = k.shape[-1]
    if debiased and n < 4:
        raise ValueError(f"unbiased HSIC needs n >= 4, got n={n}")
    return frobenius(centre(k, debiased), centre(l, debiased)) / hsic_normaliser(n, debiased)


def masked_centre(gram: torch.Tensor, mask: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Centre ``gram (..., n, n)`` on the rows where ``mask (..., n)`` is 1; other rows/columns become 0.

    Same result as gathering the kept rows, centring, and scattering back.
    """
    mask = mask.to(gram.dtype)
    pair = mask.unsqueeze(-1) * mask.unsqueeze(-2)
    size = mask.sum(dim=-1)[..., None, None]
    masked = gram * pair
    if debiased:
        torch.diagonal(masked, dim1=-2, dim2=-1).zero_()
        row = masked.sum(dim=-1, keepdim=True)
        total = row.sum(dim=-2, keepdim=True)
        out = masked - (row + row.mT) / (size - 2) + total / ((size - 1) * (size - 2))
        out = out * pair
        torch.diagonal(out, dim1=-2, dim2=-1).zero_()
        return out
    row = masked.sum(dim=-1, keepdim=True) / size
    total = row.sum(dim=-2, keepdim=True) / size
    return (masked - row - row.mT + total) * pair


def unit_frobenius(centred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred Grams -> (``C / ||C||_F``, bool ``(...)`` where ``||C||_F`` is 0 or not finite -> NaN)."""
    norm = centred.square().sum(dim=(-2, -1)).sqrt()
    bad = ~(torch.isfinite(norm) & (norm > 0))
    unit = centred / torch.where(bad, torch.nan, norm)[..., None, None]
    return unit, bad
