"""Orthogonal Procrustes distance (Ding, Denain & Steinhardt 2021; Williams et al. 2021)."""

from __future__ import annotations

import torch

from taskscope.similarity.measures.base import Measure, register


@register("procrustes")
class Procrustes(Measure):
    """``d = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_*`` after centring columns and scaling each side to unit
    Frobenius norm, i.e. ``min_Q ||X - Y Q||_F^2`` over orthogonal ``Q`` (zero-padding the narrower side).

    Range ``[0, 2]``; 0 = identical up to rotation, translation and isotropic scaling (a distance:
    lower is more similar).  ``angular=True`` returns ``arccos(||X^T Y||_*)`` in ``[0, pi/2]`` instead.
    """

    higher_is_similar = False

    def __init__(self, angular: bool = False, **kw: object) -> None:
        super().__init__(**kw)
        self.angular = angular

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        xc, yc = x - x.mean(dim=0), y - y.mean(dim=0)
        xc, yc = xc / torch.linalg.norm(xc), yc / torch.linalg.norm(yc)
        nuclear = torch.linalg.svdvals(xc.T @ yc).sum().clamp(max=1.0)
        if self.angular:
            return float(torch.arccos(nuclear))
        return float((2.0 - 2.0 * nuclear).clamp_min(0.0))
