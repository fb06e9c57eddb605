"""Mixed precision for training: bfloat16 autocast over float32 master weights, or plain float32.

`autocast_for(config.autocast_dtype, device)` decides once per run, in this order:

1. ``None``: no autocast (float32 forward and backward);
2. ``"bfloat16"``: try a small matmul under ``torch.autocast(device.type, dtype=torch.bfloat16)``; if it
   runs and yields bfloat16 the run's forward passes (training and validation) run under that autocast: the
   weights (and LoRA's adapters, the ones the optimizer updates) stay float32, matmuls run in bfloat16, and
   the loss is computed in float32 (`objective.TargetLoss` casts the logits);
3. otherwise the run falls back to float32 and says why (`note_fast_path("train.autocast_bf16", ...)`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from taskscope.common.fastpaths import note_fast_path

AutocastFactory = Callable[[], AbstractContextManager[object]]


def _bf16_problem(device: torch.device) -> str:
    """Why bfloat16 autocast cannot run on ``device`` ("" when it can), found by trying it."""
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            x = torch.ones((2, 2), device=device)
            y = torch.nn.functional.linear(x, x)
    except (RuntimeError, TypeError, ValueError) as error:
        return f"bfloat16 autocast failed on {device.type}: {error}"
    if y.dtype != torch.bfloat16:
        return f"autocast on {device.type} does not run matmuls in bfloat16 (got {y.dtype})"
    return ""


def autocast_for(dtype: str | None, device: torch.device) -> AutocastFactory:
    """A factory of the context every forward pass of the run enters (module docstring)."""
    if dtype is None:
        return contextlib.nullcontext
    problem = _bf16_problem(device)
    note_fast_path("train.autocast_bf16", used=not problem, reason=problem)
    if problem:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
