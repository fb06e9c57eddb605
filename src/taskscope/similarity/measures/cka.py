"""CKA behind the measure interface (delegates to :func:`taskscope.similarity.cka`, batched)."""

from __future__ import annotations

import numpy as np
import torch

from taskscope.similarity.cka import cka
from taskscope.similarity.inputs import NanPolicy, Precision
from taskscope.similarity.measures.base import Measure, register


@register("cka")
class CKA(Measure):
    """Centred kernel alignment; 1 = identical up to rotation and isotropic scaling."""

    def __init__(self, kernel: str = "linear", debiased: bool = False, *, precision: Precision = "fast",
                 nan_policy: NanPolicy = "raise", **kernel_args: object) -> None:
        super().__init__(nan_policy=nan_policy)
        self.kernel, self.debiased, self.precision, self.kernel_args = kernel, debiased, precision, kernel_args

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(self(x, y))

    def __call__(self, X: object, Y: object) -> float | np.ndarray:
        return cka(X, Y, self.kernel, self.debiased, precision=self.precision, nan_policy=self.nan_policy,
                   **self.kernel_args)
