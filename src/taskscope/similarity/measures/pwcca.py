"""PWCCA (Morcos, Raghu & Bengio 2018): canonical correlations weighted by how much of X they carry."""

from __future__ import annotations

import torch

from taskscope.similarity.measures.base import Measure, register
from taskscope.similarity.measures.canonical import (
    canonical_correlations,
    orthonormal_basis,
    warn_if_saturated,
)


@register("pwcca")
class PWCCA(Measure):
    """Order: centre columns; orthonormal bases ``Qx``, ``Qy`` (rank-deficient directions dropped);
    canonical correlations ``rho`` and X-side canonical variates ``h_i = Qx a_i``; weights
    ``alpha_i = sum_j |<h_i, x_j>|`` over X's columns ``x_j``, normalised to sum 1;
    ``PWCCA = sum_i alpha_i rho_i``.  Asymmetric (weights from X, as in Morcos et al.); needs
    ``n > rank``.  In ``[0, 1]``, higher is more similar."""

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        xc, yc = x - x.mean(dim=0), y - y.mean(dim=0)
        qx, qy = orthonormal_basis(xc), orthonormal_basis(yc)
        warn_if_saturated(x.shape[0], qx.shape[1], qy.shape[1], self.name)
        rho, a = canonical_correlations(qx, qy)
        variates = qx @ a[:, : rho.shape[0]]                  # (n, k) unit-norm canonical variates of X
        alpha = (variates.T @ xc).abs().sum(dim=1)
        return float((alpha / alpha.sum() * rho).sum())
