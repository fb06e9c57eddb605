"""Streaming CKA over minibatches (Nguyen, Raghu & Kornblith 2021), so ``n`` can exceed memory.

``CKA_mb = mean_b HSIC_u(K_b, L_b) / sqrt(mean_b HSIC_u(K_b, K_b) * mean_b HSIC_u(L_b, L_b))`` where
``b`` runs over minibatches and ``HSIC_u`` is the unbiased estimator (Song et al. 2012), so the means
are unbiased for the population HSIC whatever the batch size (each batch needs ``m >= 4`` rows).

Order of operations in :meth:`MinibatchCKA.update`: check the batch pair, compute each side's Gram
stack once, U-centre, and ADD the three HSIC values to float64 running sums (plus the batch count).
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
        self.batches = 0

    def update(self, X: object, Y: object) -> None:
        """Add one minibatch pair (leading shapes must match across updates)."""
        x, y = prepare_pair(X, Y, nan_policy=self.nan_policy, minimum_rows=4, what="a minibatch (unbiased HSIC)")
        m = x.shape[-2]
        ux = u_centre(self.kernel.gram(x, self.precision))
        uy = u_centre(self.kernel.gram(y, self.precision))
        norm = hsic_normaliser(m, debiased=True)
        xy, xx, yy = frobenius(ux, uy) / norm, frobenius(ux, ux) / norm, frobenius(uy, uy) / norm
        if self.sum_xy is None:
            self.sum_xy, self.sum_xx, self.sum_yy = xy, xx, yy
        else:
            if xy.shape != self.sum_xy.shape:
                raise ValueError(f"minibatch leading shape {tuple(xy.shape)} differs from earlier batches "
                                 f"{tuple(self.sum_xy.shape)}")
            self.sum_xy = self.sum_xy + xy.to(self.sum_xy.device)
            self.sum_xx = self.sum_xx + xx.to(self.sum_xx.device)
            self.sum_yy = self.sum_yy + yy.to(self.sum_yy.device)
        self.batches += 1

    def hsic(self) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
        """Mean unbiased ``(HSIC(K, L), HSIC(K, K), HSIC(L, L))`` over the batches so far."""
        if self.batches == 0 or self.sum_xy is None:
            raise RuntimeError("MinibatchCKA.hsic/compute called before any update")
        return tuple(to_output(s / self.batches) for s in (self.sum_xy, self.sum_xx, self.sum_yy))

    def compute(self) -> float | np.ndarray:
        """Minibatch CKA: ``float`` for 2-D batches, else an array of the leading shape."""
        if self.batches == 0 or self.sum_xy is None:
            raise RuntimeError("MinibatchCKA.compute called before any update")
        denom = (self.sum_xx * self.sum_yy).sqrt()
        bad = ~(denom > 0)
        if bool(bad.any()):
            warn_undefined(int(bad.sum()), "a representation is constant in every minibatch (zero HSIC)")
        return to_output(self.sum_xy / torch.where(bad, torch.nan, denom))
