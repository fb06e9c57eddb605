"""Streaming CKA over minibatches (Nguyen, Raghu & Kornblith 2021), so ``n`` can exceed memory.

``CKA_mb = mean_b HSIC_u(K_b, L_b) / sqrt(mean_b HSIC_u(K_b, K_b) * mean_b HSIC_u(L_b, L_b))`` where
``b`` runs over minibatches and ``HSIC_u`` is the unbiased estimator (Song et al. 2012), so the means
are unbiased for the population HSIC whatever the batch size (each batch needs ``m >= 4`` rows).

Order of operations in :meth:`MinibatchCKA.update`: check the batch pair, compute each side's Gram
stack once, U-centre, divide each side by a scale fixed at the first batch (its largest centred Gram
entry, so the sums neither overflow nor underflow), and ADD the three HSIC values to float64 running
sums (plus the batch count).
:meth:`MinibatchCKA.compute` divides the sums; nothing is overwritten between batches.  With the RBF
kernel the median heuristic is applied per minibatch unless a fixed ``sigma`` is given.
"""

from __future__ import annotations

import numpy as np
import torch

from taskscope.similarity.hsic import frobenius, hsic_normaliser, u_centre
from taskscope.similarity.inputs import (
    NanPolicy,
    Precision,
    prepare_pair,
    to_output,
    warn_undefined,
)
from taskscope.similarity.kernels import get_kernel


def _peak(u: torch.Tensor) -> torch.Tensor:
    """Largest absolute entry per position ``(..., 1, 1)``, 1 where it is 0 or not finite."""
    peak = u.abs().amax(dim=(-2, -1), keepdim=True)
    return torch.where(torch.isfinite(peak) & (peak > 0), peak, torch.ones_like(peak))


class MinibatchCKA:
    """Accumulate unbiased HSIC over minibatch pairs ``X (..., m, d1)``, ``Y (..., m, d2)``."""

    def __init__(self, kernel: str = "linear", *, precision: Precision = "fast",
                 nan_policy: NanPolicy = "raise", **kernel_args: object) -> None:
        self.kernel = get_kernel(kernel, **kernel_args)
        self.precision = precision
        self.nan_policy = nan_policy
        self.reset()

    def reset(self) -> None:
        self.sum_xy: torch.Tensor | None = None
        self.sum_xx: torch.Tensor | None = None
        self.sum_yy: torch.Tensor | None = None
        self.scale_x: torch.Tensor | None = None
        self.scale_y: torch.Tensor | None = None
        self.batches = 0

    def update(self, X: object, Y: object) -> None:
        """Add one minibatch pair (leading shapes must match across updates)."""
        x, y = prepare_pair(X, Y, nan_policy=self.nan_policy, minimum_rows=4, what="a minibatch (unbiased HSIC)")
        m = x.shape[-2]
        ux = u_centre(self.kernel.gram(x, self.precision))
        uy = u_centre(self.kernel.gram(y, self.precision))
        if self.scale_x is None:   # the first batch fixes one scale per side for all sums (no overflow)
            self.scale_x, self.scale_y = (_peak(u) for u in (ux, uy))
        elif ux.shape[:-2] != self.scale_x.shape[:-2]:
            raise ValueError(f"minibatch leading shape {tuple(ux.shape[:-2])} differs from earlier batches "
                             f"{tuple(self.scale_x.shape[:-2])}")
        ux, uy = ux / self.scale_x.to(ux.device), uy / self.scale_y.to(uy.device)
        norm = hsic_normaliser(m, debiased=True)
        xy, xx, yy = frobenius(ux, uy) / norm, frobenius(ux, ux) / norm, frobenius(uy, uy) / norm
        if self.sum_xy is None:
            self.sum_xy, self.sum_xx, self.sum_yy = xy, xx, yy
        else:
            self.sum_xy = self.sum_xy + xy.to(self.sum_xy.device)
            self.sum_xx = self.sum_xx + xx.to(self.sum_xx.device)
            self.sum_yy = self.sum_yy + yy.to(self.sum_yy.device)
        self.batches += 1

    def hsic(self) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
        """Mean unbiased ``(HSIC(K, L), HSIC(K, K), HSIC(L, L))`` over the batches so far."""
        if self.batches == 0 or self.sum_xy is None:
            raise RuntimeError("MinibatchCKA.hsic/compute called before any update")
        sx, sy = self.scale_x[..., 0, 0], self.scale_y[..., 0, 0]
        return tuple(to_output(s * scale / self.batches)
                     for s, scale in ((self.sum_xy, sx * sy), (self.sum_xx, sx * sx), (self.sum_yy, sy * sy)))

    def compute(self) -> float | np.ndarray:
        """Minibatch CKA: ``float`` for 2-D batches, else an array of the leading shape."""
        if self.batches == 0 or self.sum_xy is None:
            raise RuntimeError("MinibatchCKA.compute called before any update")
        denom = (self.sum_xx * self.sum_yy).sqrt()
        bad = ~(denom > 0)
        if bool(bad.any()):
            warn_undefined(int(bad.sum()), "a representation is constant in every minibatch (zero HSIC)")
        return to_output(self.sum_xy / torch.where(bad, torch.nan, denom))
