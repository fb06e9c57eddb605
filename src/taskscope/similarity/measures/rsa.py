"""Representational similarity analysis (Kriegeskorte et al. 2008)."""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from taskscope.similarity.inputs import warn_undefined
from taskscope.similarity.measures.base import Measure, register


def dissimilarities(x: torch.Tensor, metric: str) -> torch.Tensor:
    """``(n, d)`` -> upper triangle (``i < j``) of the representational dissimilarity matrix."""
    if metric == "correlation":
        rows = x - x.mean(dim=1, keepdim=True)
        rows = rows / torch.linalg.norm(rows, dim=1, keepdim=True)
        rdm = 1.0 - rows @ rows.T
    elif metric == "euclidean":
        rdm = torch.cdist(x, x)
    else:
        raise ValueError(f"rsa: metric must be 'correlation' or 'euclidean', got {metric!r}")
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return rdm[i, j]


@register("rsa")
class RSA(Measure):
    """Spearman correlation of the two RDMs' upper triangles (``i < j``).  ``metric``: ``"correlation"``
    (1 - Pearson r between input rows; default) or ``"euclidean"``.  In ``[-1, 1]``, higher is more similar."""

    min_rows = 3

    def __init__(self, metric: str = "correlation", **kw: object) -> None:
        super().__init__(**kw)
        if metric not in ("correlation", "euclidean"):
            raise ValueError(f"rsa: metric must be 'correlation' or 'euclidean', got {metric!r}")
        self.metric = metric

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        dx, dy = dissimilarities(x, self.metric), dissimilarities(y, self.metric)
        if not bool(torch.isfinite(dx).all() & torch.isfinite(dy).all()):
            warn_undefined(1, "rsa: an input row is constant, so its correlation distance is undefined")
            return float("nan")
        if bool((dx == dx[0]).all() | (dy == dy[0]).all()):
            warn_undefined(1, "rsa: all dissimilarities are equal on one side")
            return float("nan")
        return float(spearmanr(dx.cpu().numpy(), dy.cpu().numpy()).statistic)
