"""Task sources by short spec string: ``sni:PATH``, ``templated:PATH``, ``builtin``, ``jsonl:PATH``, ``hf:NAME``.

A source is a function ``(path: str | None, **options) -> TaskSuite`` registered under a prefix::

    @register_source("sni")
    def load_sni(path, **options): ...

``load_suite("sni:/data/natural-instructions", min_instances=20)`` splits the spec at the first
``:`` into prefix and path and calls the registered function.  A new source needs no core edit:
register it in its own module and import that module (built-in sources are imported lazily here).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from taskscope.tasks.core import TaskError, TaskSuite

SourceFn = Callable[..., TaskSuite]
SOURCES: dict[str, SourceFn] = {}

# prefix -> module that registers it on import (keeps start-up cheap)
_BUILTIN_SOURCE_MODULES = {
    "sni": "taskscope.tasks.sni",
    "templated": "taskscope.tasks.templated",
    "builtin": "taskscope.tasks.builtin",
    "jsonl": "taskscope.tasks.jsonl",
    "hf": "taskscope.tasks.hf",
}


def register_source(prefix: str) -> Callable[[SourceFn], SourceFn]:
    def decorate(fn: SourceFn) -> SourceFn:
        SOURCES[prefix] = fn
        return fn

    return decorate


def parse_spec(spec: str) -> tuple[str, str | None]:
    prefix, sep, path = spec.partition(":")
    return prefix.strip(), (path if sep else None)


def known_sources() -> list[str]:
    """Every registered prefix and every built-in one (registered on first use)."""
    return sorted(set(SOURCES) | set(_BUILTIN_SOURCE_MODULES))


def load_suite(spec: str, **options: Any) -> TaskSuite:
    """Load a :class:`TaskSuite` from a spec string; unknown prefixes raise :class:`TaskError`."""
    prefix, path = parse_spec(spec)
    if prefix not in SOURCES and prefix in _BUILTIN_SOURCE_MODULES:
        importlib.import_module(_BUILTIN_SOURCE_MODULES[prefix])
    if prefix not in SOURCES:
        close = difflib.get_close_matches(prefix, known_sources(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known sources: {known_sources()}"
        raise TaskError(f"unknown task source {prefix!r} in spec {spec!r}; {hint}", field="spec")
    return SOURCES[prefix](path, **options)
