"""Task sources by short spec string: ``sni:PATH``, ``templated:PATH``, ``builtin``, ``jsonl:PATH``, ``hf:NAME``.

A source is a function ``(path: str | None, **options) -> TaskSuite`` registered under a prefix::

    @register_source("sni")
    def load_sni(path, **options): ...

``load_suite("sni:/data/natural-instructions", min_instances=20)`` splits the spec at the first
``:`` into prefix and path and calls the registered function.  A new source needs no core edit:
register it in its own module and import that module, or name it as an entry point of the
``taskscope.sources`` group (see :mod:`taskscope.registry`); built-in sources are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskscope.registry import Registry, RegistryError
from taskscope.tasks.core import TaskError, TaskSuite

SourceFn = Callable[..., TaskSuite]
SOURCES: Registry[SourceFn] = Registry(
    "task source", entry_point_group="taskscope.sources", reserved=("path",),
    builtin_modules=("taskscope.tasks.sni", "taskscope.tasks.templated", "taskscope.tasks.builtin",
                     "taskscope.tasks.jsonl", "taskscope.tasks.hf"),
)


def register_source(prefix: str) -> Callable[[SourceFn], SourceFn]:
    """Decorator: register a source function under ``prefix`` (``SOURCES.register``)."""
    return SOURCES.register(prefix)


def parse_spec(spec: str) -> tuple[str, str | None]:
    prefix, sep, path = spec.partition(":")
    return prefix.strip(), (path if sep else None)


def known_sources() -> list[str]:
    """Every registered prefix: built-in sources and installed plug-ins."""
    return SOURCES.names()


def load_suite(spec: str, **options: Any) -> TaskSuite:
    """Load a :class:`TaskSuite` from a spec string; unknown prefixes raise :class:`TaskError`."""
    prefix, path = parse_spec(spec)
    try:
        source = SOURCES.lookup(prefix)
    except RegistryError:
        raise TaskError(f"unknown task source {prefix!r} in spec {spec!r}; {SOURCES.suggestion(prefix)}",
                        field="spec") from None
    return source(path, **options)
