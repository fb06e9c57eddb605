"""Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis")."""

from __future__ import annotations

import torch

from taskscope.similarity.measures.base import Measure, register


def neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, d)`` -> ``(n, k)`` indices of each row's ``k`` most cosine-similar other rows."""
    unit = x / torch.linalg.norm(x, dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    sim = unit @ unit.T
    sim.fill_diagonal_(-torch.inf)
    return sim.topk(k, dim=1).indices


@register("mutual_knn")
class MutualKNN(Measure):
    """Mean over inputs of ``|N_X(i) & N_Y(i)| / k``, ``N`` = the ``k`` nearest other inputs by cosine
    similarity of the L2-normalised rows (``k = 10`` by default).  In ``[0, 1]``; a random pairing
    scores about ``k / (n - 1)``.  Ties are broken by ``torch.topk``."""

    def __init__(self, k: int = 10, **kw: object) -> None:
        super().__init__(**kw)
        if k < 1:
            raise ValueError(f"mutual_knn: k must be >= 1, got {k}")
        self.k = int(k)

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        n = x.shape[0]
        if self.k >= n:
            raise ValueError(f"mutual_knn: k={self.k} needs more than k inputs, got n={n}")
        nx, ny = neighbours(x, self.k), neighbours(y, self.k)
        in_x = torch.zeros(n, n, dtype=torch.bool, device=x.device).scatter_(1, nx, True)
        shared = in_x.gather(1, ny).sum(dim=1)
        return float(shared.to(torch.float64).mean() / self.k)
