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

EXECUTORS: dict[str, type[Executor]] = {}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    def decorate(cls: type[Executor]) -> type[Executor]:
        cls.name = name
        EXECUTORS[name] = cls
        return cls

    return decorate


class Executor(ABC):
    name: ClassVar[str] = ""

    @abstractmethod
    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple], description: str) -> list[Any]:
        """Call ``fn(*args)`` for every ``args`` in ``args_list``; results in input order."""

    def close(self) -> None:
        """Release resources this executor started."""


def get_executor(name: str, **options: Any) -> Executor:
    # the built-in executors register on import
    from taskscope.pipeline.executors import local, ray  # noqa: F401

    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; known executors: {sorted(EXECUTORS)}")
    return EXECUTORS[name](**options)
