"""Canonical correlation helpers shared by SVCCA and PWCCA (orthonormal bases + one SVD)."""

from __future__ import annotations

import torch

from taskscope.similarity.inputs import SimilarityWarning


def orthonormal_basis(x: torch.Tensor, *, variance_kept: float | None = None, rtol: float = 1e-10) -> torch.Tensor:
    """Centred float64 ``(n, d)`` -> ``(n, k)`` orthonormal basis of its column space.

    Directions with singular value below ``rtol * s_max`` are dropped (rank deficiency); with
    ``variance_kept`` only the leading directions that explain that share of the variance are kept
    (SVCCA's SVD step).
    """
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    keep = int((s > rtol * s[0]).sum())
    if variance_kept is not None:
        share = torch.cumsum(s.square(), 0) / s.square().sum()
        keep = min(keep, int((share < variance_kept).sum()) + 1)
    return u[:, :keep]


def canonical_correlations(qx: torch.Tensor, qy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases -> (canonical correlations descending, X-side canonical directions ``(kx, k)``)."""
    a, rho, _ = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    return rho.clamp(0.0, 1.0), a


def warn_if_saturated(n: int, kx: int, ky: int, name: str) -> None:
    if max(kx, ky) >= n - 1:
        import warnings

        warnings.warn(f"{name}: rank {max(kx, ky)} >= n - 1 = {n - 1}: canonical correlations are trivially 1; "
                      f"use more inputs than dimensions (or SVCCA's variance_kept)", SimilarityWarning, stacklevel=4)
