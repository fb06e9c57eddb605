"""The ``local`` executor: jobs one after another in this process, under a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskscope.pipeline.executors.base import Executor, register_executor
from taskscope.pipeline.progress import track


@register_executor("local")
class LocalExecutor(Executor):
    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple], description: str) -> list[Any]:
        return [fn(*args) for args in track(args_list, description)]
