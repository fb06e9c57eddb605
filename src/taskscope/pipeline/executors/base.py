"""Executors run the independent jobs of a fanning-out stage (one control model per task, ...).

A job is a *top-level* function and its arguments are plain data (str, dict, list), so any executor
can ship it to another process.  ``Executor.map(fn, args_list, description)`` returns the results
in input order.  Executors register under a short id::

    @register_executor("local")
    class LocalExecutor(Executor): ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from taskscope.registry import Registry

EXECUTORS: Registry[type[Executor]] = Registry(
    "executor", entry_point_group="taskscope.executors",
    builtin_modules=("taskscope.pipeline.executors.local", "taskscope.pipeline.executors.ray"),
)


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: ``EXECUTORS.register(name)``."""
    return EXECUTORS.register(name)


class Executor(ABC):
    name: ClassVar[str] = ""

    @abstractmethod
    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple], description: str) -> list[Any]:
        """Call ``fn(*args)`` for every ``args`` in ``args_list``; results in input order."""

    def close(self) -> None:
        """Release resources this executor started."""


def get_executor(name: str, **options: Any) -> Executor:
    """The executor registered as ``name``, built with ``options`` (checked against its parameters)."""
    return EXECUTORS.lookup(name)(**EXECUTORS.check_params(name, options))
