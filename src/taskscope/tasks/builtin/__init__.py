"""The ``builtin`` task source: procedurally generated tasks that ship with the package.

``load_suite("builtin")`` or ``load_suite("builtin", n_instances=50, seed=1)``; options may also
ride in the spec after the colon: ``"builtin:n_instances=64,seed=3,clusters=sentiment+nli"``
(comma-separated ``key=value``; list values joined by ``+``).  See ``docs/builtin_tasks.md``.

Tasks are declared one module per cluster (``sentiment.py`` ... ``program_execution.py``) with
:func:`~taskscope.tasks.builtin.base.builtin_task`; importing this package registers them all.
"""

from __future__ import annotations

from taskscope.tasks.builtin import (  # noqa: F401  (imported to register their tasks)
    arithmetic,
    closed_book_qa,
    commonsense,
    coreference,
    nli,
    paraphrase,
    program_execution,
    reading_comprehension,
    sentiment,
    struct_to_text,
    summarization,
    translation,
)
from taskscope.tasks.builtin.base import (
    CLUSTERS,
    TASK_SPECS,
    BuiltinTaskSpec,
    build_task,
    builtin_task,
)
from taskscope.tasks.core import TaskError, TaskSuite
from taskscope.tasks.registry import register_source

__all__ = ["CLUSTERS", "TASK_SPECS", "BuiltinTaskSpec", "build_task", "builtin_task", "load_builtin", "parse_options"]

_INT_OPTIONS = ("n_instances", "seed")
_LIST_OPTIONS = ("tasks", "clusters")


def parse_options(text: str | None) -> dict[str, int | list[str]]:
    """Parse ``"n_instances=64,seed=3,tasks=a+b"`` into ``{"n_instances": 64, "seed": 3, "tasks": ["a", "b"]}``."""
    options: dict[str, int | list[str]] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or key not in _INT_OPTIONS + _LIST_OPTIONS:
            raise TaskError(f"bad builtin spec option {item!r}; expected key=value with key in "
                            f"{list(_INT_OPTIONS + _LIST_OPTIONS)}", field="spec")
        if key in _INT_OPTIONS:
            try:
                options[key] = int(value)
            except ValueError:
                raise TaskError(f"builtin spec option {key} needs an integer, got {value!r}", field=key) from None
        else:
            options[key] = [name for name in value.split("+") if name]
    return options


def _selected_specs(tasks: list[str] | None, clusters: list[str] | None) -> list[BuiltinTaskSpec]:
    for name in tasks or ():
        if name not in TASK_SPECS:
            raise TaskError(f"unknown builtin task; known: {sorted(TASK_SPECS)}", task=name, field="tasks")
    for cluster in clusters or ():
        if cluster not in CLUSTERS:
            raise TaskError(f"unknown builtin cluster {cluster!r}; known: {list(CLUSTERS)}", field="clusters")
    selected = [
        spec for spec in TASK_SPECS.values()
        if (tasks is None or spec.name in tasks) and (clusters is None or spec.cluster in clusters)
    ]
    return sorted(selected, key=lambda spec: CLUSTERS.index(spec.cluster))


@register_source("builtin")
def load_builtin(
    path: str | None = None,
    *,
    n_instances: int = 200,
    seed: int = 0,
    tasks: list[str] | None = None,
    clusters: list[str] | None = None,
) -> TaskSuite:
    """The builtin suite (name ``"builtin"``): tasks grouped by cluster in :data:`CLUSTERS` order.

    Order of operations: parse the options in ``path`` (they replace keyword defaults; a keyword
    given with a different value is an error), select tasks by name and cluster, then build each
    task from ``seed`` alone (a task's data never depends on which other tasks are selected).
    """
    given = {"n_instances": n_instances, "seed": seed, "tasks": tasks, "clusters": clusters}
    defaults = {"n_instances": 200, "seed": 0, "tasks": None, "clusters": None}
    for key, value in parse_options(path).items():
        if given[key] != defaults[key] and given[key] != value:
            raise TaskError(f"builtin option {key} given twice: {value!r} in the spec, {given[key]!r} as keyword",
                            field=key)
        given[key] = value
    specs = _selected_specs(given["tasks"], given["clusters"])
    built = [build_task(spec, n_instances=given["n_instances"], seed=given["seed"]) for spec in specs]
    return TaskSuite("builtin", tuple(built))
