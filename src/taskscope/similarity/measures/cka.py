"""CKA behind the measure interface (delegates to :func:`taskscope.similarity.cka`, batched)."""

from __future__ import annotations

import numpy as np
import torch

from pydantic import BaseModel, ConfigDict, model_validator

from taskscope.similarity.cka import cka
from taskscope.similarity.inputs import NanPolicy, Precision
from taskscope.similarity.kernels import KERNELS
from taskscope.similarity.measures.base import Measure, register


@register("cka")
class CKA(Measure):
    """Centred kernel alignment; 1 = identical up to rotation and isotropic scaling."""

    class Params(BaseModel):
        """CKA's own parameters; any other key is an argument of the named kernel, checked against it."""

        model_config = ConfigDict(extra="allow")
        kernel: str = "linear"
        debiased: bool = False
        precision: Precision = "fast"
        nan_policy: NanPolicy = "raise"

        @model_validator(mode="after")
        def _kernel_arguments(self) -> CKA.Params:
            KERNELS.check_params(self.kernel, self.model_extra)
            return self

    def __init__(self, kernel: str = "linear", debiased: bool = False, *, precision: Precision = "fast",
                 nan_policy: NanPolicy = "raise", **kernel_args: object) -> None:
        super().__init__(nan_policy=nan_policy)
        self.kernel, self.debiased, self.precision, self.kernel_args = kernel, debiased, precision, kernel_args

    def compute(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(self(x, y))

    def __call__(self, X: object, Y: object) -> float | np.ndarray:
        return cka(X, Y, self.kernel, self.debiased, precision=self.precision, nan_policy=self.nan_policy,
                   **self.kernel_args)
