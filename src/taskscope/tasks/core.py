"""The task data model: :class:`Instance`, :class:`Example`, :class:`Template`, :class:`Task`, :class:`TaskSuite`.

Everything downstream (training, extraction, evaluation) consumes these objects, and this
module imports nothing else from taskscope.

Two kinds of task share one class:

* *plain* tasks (SNI): every :class:`Instance` already carries its ``input`` text;
* *templated* tasks (FLAN-style, builtin): every instance carries a ``fields`` record and the
  task carries several :class:`Template` s that turn a record into ``(input, outputs)``.
  :meth:`Task.render` does that; for plain tasks it returns the instance unchanged.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class TaskError(ValueError):
    """Bad task data.  The message always names the file (when there is one), the task and the field."""

    def __init__(self, message: str, *, file: str | None = None, task: str | None = None, field: str | None = None):
        self.file, self.task, self.field, self.detail = file, task, field, message
        where = ", ".join(f"{k} {v!r}" for k, v in (("file", file), ("task", task), ("field", field)) if v)
        super().__init__(f"{message} ({where})" if where else message)


@dataclass(frozen=True)
class Example:
    """A demonstration (SNI "Positive/Negative Examples"): input, output and an optional explanation."""

    input: str
    output: str
    explanation: str = ""


@dataclass(frozen=True)
class Instance:
    """One input with one or more acceptable reference outputs.

    ``id`` is stable across runs and unique inside its task; splits are drawn from hashes of it,
    so adding tasks to a suite never reshuffles the instances of the others.
    ``fields`` holds the raw record of a templated task (empty for plain tasks).
    """

    id: str
    input: str
    outputs: tuple[str, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))


_FORMATTER = string.Formatter()


def name_problem(name: str) -> str | None:
    """Why a task name cannot be a folder name (runs make one folder per task), or ``None``.

    The rule of ``taskscope.common.paths.component_problem``, restated because ``tasks`` imports nothing of ours.
    """
    if name in (".", ".."):
        return "would name a folder's parent or itself; task names become folder names"
    if any(bad in name for bad in ("/", "\\", "\0")):
        return "contains a path separator or NUL; task names become folder names"
    return None


def template_fields(text: str) -> set[str]:
    """The record fields a ``str.format`` template names (``"{premise} ..."`` -> ``{"premise"}``)."""
    names = set()
    for _, name, _, _ in _FORMATTER.parse(text):
        if name:
            names.add(name.split(".")[0].split("[")[0])
    return names


def is_missing(value: Any) -> bool:
    """A record value that is absent: ``None`` (JSON null, an empty CSV cell) or a float NaN (pandas)."""
    return value is None or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class Template:
    """An instruction template of a templated task.

    ``input`` and ``output`` are ``str.format`` strings over the record fields, e.g.
    ``input="Premise: {premise}\\nHypothesis: {hypothesis}\\nDoes the premise entail the hypothesis?"``,
    ``output="{label}"``.  ``verbalizer`` maps a raw field value to words before formatting,
    e.g. ``{"label": {"0": "yes", "1": "no"}}``; a value the verbalizer does not map, and a missing value
    (:func:`is_missing`), raise :class:`TaskError` naming the field.  ``outputs_field`` names a record field
    holding a list of alternative references (used instead of ``output`` when present in the record).
    """

    input: str
    output: str = "{answer}"
    verbalizer: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    outputs_field: str | None = None

    def fields(self) -> set[str]:
        return template_fields(self.input) | template_fields(self.output)

    def render(self, record: Mapping[str, Any], *, task: str = "") -> tuple[str, tuple[str, ...]]:
        values = {}
        for name in self.fields():
            if name not in record:
                raise TaskError(
                    f"template names unknown field {name!r}; the record has {sorted(record)}",
                    task=task or None,
                    field=name,
                )
            value = record[name]
            if is_missing(value):
                raise TaskError(f"field {name!r} has no value", task=task or None, field=name)
            words = self.verbalizer.get(name)
            if words and str(value) not in words:
                raise TaskError(f"value {str(value)!r} of field {name!r} has no verbalizer entry; the verbalizer "
                                f"maps {sorted(words)}", task=task or None, field=name)
            values[name] = words[str(value)] if words else value
        text = self.input.format(**values)
        if self.outputs_field and self.outputs_field in record:
            refs = record[self.outputs_field]
            refs = (refs,) if isinstance(refs, str) else tuple(str(r) for r in refs)
            return text, refs
        return text, (self.output.format(**values),)


@dataclass(frozen=True)
class Task:
    """A task: its description, demonstrations and instances.

    ``clusters`` is the task's cluster / category list (SNI "Categories", FLAN cluster); the
    first entry is its primary cluster.  ``source`` names where the task came from (``"sni"``,
    ``"templated"``, ``"builtin"``) and ``sources`` its upstream datasets.
    """

    name: str
    instances: tuple[Instance, ...]
    clusters: tuple[str, ...] = ()
    definition: str = ""
    positive_examples: tuple[Example, ...] = ()
    negative_examples: tuple[Example, ...] = ()
    domains: tuple[str, ...] = ()
    source: str = ""
    sources: tuple[str, ...] = ()
    input_language: tuple[str, ...] = ("English",)
    output_language: tuple[str, ...] = ("English",)
    templates: tuple[Template, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("instances", "clusters", "positive_examples", "negative_examples", "domains",
                     "sources", "input_language", "output_language", "templates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.name:
            raise TaskError("task has an empty name", field="name")
        problem = name_problem(self.name)
        if problem:
            raise TaskError(f"task name {self.name!r} {problem}", task=self.name, field="name")

    @property
    def cluster(self) -> str:
        """The primary cluster (first category), or ``"uncategorised"``."""
        return self.clusters[0] if self.clusters else "uncategorised"

    @property
    def n_instances(self) -> int:
        return len(self.instances)

    @property
    def is_templated(self) -> bool:
        return bool(self.templates)

    def render(self, instance: Instance, template_index: int = 0) -> Instance:
        """The instance with ``input``/``outputs`` filled from template ``template_index`` (plain tasks: unchanged)."""
        if not self.templates:
            return instance
        template = self.templates[template_index % len(self.templates)]
        text, outputs = template.render(instance.fields, task=self.name)
        return replace(instance, input=text, outputs=outputs)

    def with_instances(self, instances: Iterable[Instance]) -> Task:
        return replace(self, instances=tuple(instances))

    def summary(self) -> dict[str, Any]:
        """A JSON-ready overview: name, cluster, categories, n_instances, source, domains, templates, split."""
        return {
            "name": self.name,
            "cluster": self.cluster,
            "categories": list(self.clusters),
            "n_instances": self.n_instances,
            "source": self.source,
            "domains": list(self.domains),
            "n_templates": len(self.templates),
            "split": self.metadata.get("split"),
        }


@dataclass(frozen=True)
class Dropped:
    """Tasks or records a loader or filter left out of a suite, and why (``records`` empty: the whole task)."""

    task: str
    reason: str
    field: str | None = None
    file: str | None = None
    records: tuple[str, ...] = ()  # where each dropped record was (e.g. "line 7"), for record drops

    def __str__(self) -> str:
        what = f"{len(self.records)} record(s) of task {self.task!r}" if self.records else f"task {self.task!r}"
        where = ", ".join(f"{k} {v!r}" for k, v in (("file", self.file), ("field", self.field)) if v)
        return f"{what}: {self.reason}" + (f" ({where})" if where else "")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "reason": self.reason, "field": self.field, "file": self.file,
                "records": list(self.records)}


@dataclass(frozen=True)
class TaskSuite:
    """A named, ordered collection of tasks with filters.  Task names are unique.

    ``dropped`` lists what the loader or its filters left out (kept through ``filter`` / ``select`` / ...);
    :meth:`dropped_summary` is its JSON-ready count for a run's manifest.
    """

    name: str
    tasks: tuple[Task, ...]
    dropped: tuple[Dropped, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "dropped", tuple(self.dropped))
        seen: set[str] = set()
        for task in self.tasks:
            if task.name in seen:
                raise TaskError(f"duplicate task name in suite {self.name!r}", task=task.name, field="name")
            seen.add(task.name)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        dropped = self.dropped_task(name)
        if dropped is not None:
            raise KeyError(f"no task {name!r} in suite {self.name!r}: the loader dropped it, {dropped}")
        close = difflib.get_close_matches(str(name), self.names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it has {len(self.tasks)} tasks, e.g. {self.names[:5]}"
        raise KeyError(f"no task {name!r} in suite {self.name!r}; {hint}")

    def __contains__(self, name: object) -> bool:
        return any(task.name == name for task in self.tasks)

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    @property
    def clusters(self) -> list[str]:
        """Primary clusters in first-seen order."""
        return list(dict.fromkeys(task.cluster for task in self.tasks))

    def dropped_task(self, name: str) -> Dropped | None:
        """Why the loader left task ``name`` out, if it did."""
        return next((d for d in self.dropped if d.task == name and not d.records), None)

    def dropped_summary(self) -> dict[str, Any]:
        """``{"n_tasks", "n_records", "items": [...]}``: what the loader and its filters dropped."""
        return {"n_tasks": sum(1 for d in self.dropped if not d.records),
                "n_records": sum(len(d.records) for d in self.dropped),
                "items": [d.to_dict() for d in self.dropped]}

    def filter(self, predicate: Callable[[Task], bool], name: str | None = None) -> TaskSuite:
        return TaskSuite(name or self.name, tuple(t for t in self.tasks if predicate(t)), self.dropped)

    def select(self, names: Sequence[str]) -> TaskSuite:
        """The named tasks, in the order given; unknown names raise ``KeyError``."""
        return TaskSuite(self.name, tuple(self[n] for n in names), self.dropped)

    def exclude(self, names: Iterable[str]) -> TaskSuite:
        drop = set(names)
        return self.filter(lambda t: t.name not in drop)

    def by_cluster(self, clusters: Iterable[str]) -> TaskSuite:
        keep = set(clusters)
        return self.filter(lambda t: bool(keep.intersection(t.clusters)))

    def map(self, fn: Callable[[Task], Task]) -> TaskSuite:
        return TaskSuite(self.name, tuple(fn(t) for t in self.tasks), self.dropped)
