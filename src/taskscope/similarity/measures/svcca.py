"""SVCCA (Raghu et al. 2017): SVD to the leading directions, then mean canonical correlation."""

from __future__ import annotations

import torch

from taskscope.similarity.measures.base import Measure, register
from taskscope.similarity.measures.canonical import (
    canonical_correlations,
    orthonormal_basis,
    warn_if_saturated,
)


@register("svcca")
class SVCCA(Measure):
    """Order: centre columns; keep each side's top singular directions explaining ``variance_kept``
    (0.99, as in Raghu et al.) of its variance; CCA between the kept subspaces; mean of the
    ``min(kx, ky)`` canonical correlations.  In ``[0, 1]``, higher is more similar."""

    def __init__(self, variance_kept: float = 0.99, **kw: object) -> None:
        super().__init__(**kw)
        if not 0 < variance_kept <= 1:
            raise ValueError(f"svcca: variance_kept must be in (0, 1], got {variance_kept}")
        self.variance_kept = variance_kept

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        qx = orthonormal_basis(x - x.mean(dim=0), variance_kept=self.variance_kept)
        qy = orthonormal_basis(y - y.mean(dim=0), variance_kept=self.variance_kept)
        warn_if_saturated(x.shape[0], qx.shape[1], qy.shape[1], self.name)
        rho, _ = canonical_correlations(qx, qy)
        return float(rho.mean())
