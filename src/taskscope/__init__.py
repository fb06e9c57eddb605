"""taskscope: where multi-task learning happens inside instruction-tuned language models.

Sub-packages follow the data flow: ``tasks`` -> ``models`` -> ``train`` -> ``represent`` ->
``similarity`` -> ``analysis`` -> ``evaluate`` -> ``report`` -> ``pipeline`` (the study engine) -> ``studies``
(the study kinds, reached through the study registry).

Notebook entry points (imported on first use, so ``import taskscope`` stays light): :func:`open_run` (any
study's run folder), :func:`run_study`, :func:`similarity_frame` (similarity measures per layer as a DataFrame).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {"open_run": "taskscope.pipeline.run", "run_study": "taskscope.pipeline.run",
            "similarity_frame": "taskscope.analysis.frames"}
__all__ = ["__version__", "open_run", "run_study", "similarity_frame"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'taskscope' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
