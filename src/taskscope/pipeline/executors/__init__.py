"""Executors by short id: ``local`` (in process) and ``ray`` (Ray tasks)."""

from taskscope.pipeline.executors.base import (
    EXECUTORS,
    Executor,
    get_executor,
    register_executor,
)

__all__ = ["EXECUTORS", "Executor", "get_executor", "register_executor"]
