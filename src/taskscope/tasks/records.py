"""Flat records (one instance per record) to a :class:`TaskSuite`: the shared half of the ``jsonl:`` and ``hf:`` sources.

A record names its task, its text and its reference targets through :class:`RecordFields` (defaults: the keys
``taskscope tasks export`` writes - ``task``, ``instance_id``, ``prompt``, ``targets``, ``cluster``)::

    {"task": "nli", "instance_id": "nli-3", "prompt": "...Output: ", "targets": ["yes"], "cluster": "nli"}

Text: a record with the ``prompt`` field holds the whole prompt a model sees (the task gets
``metadata["prompts"] = True``; format it with kind ``prompt`` to keep it verbatim); otherwise its ``input``
field holds the query, which a prompt format wraps like any plain task's.  ``targets`` is a string or a list of
strings (numbers and booleans become strings; a class label can be mapped to its name by the caller).  A record
without the task field belongs to the task ``default_task``; one without an id gets ``"<task>-<index in task>"``.
Every other key is kept in ``Instance.fields``.

Order of operations in :func:`suite_from_records`:

1. take records in order until ``max_records`` have been read (the caller's iterator is never read further);
2. per record: check it is an object with a task name, text and non-empty targets; a bad record raises
   :class:`TaskError` naming the file, the record (``line 7``) and the field, or with ``skip_bad`` is left out
   and listed in ``suite.dropped`` (one warning for all);
3. group records by task in first-seen order (duplicate ids in a task are errors), then build each task with
   its first record's cluster;
4. optionally cap every task to ``n_instances`` by a seeded draw.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from taskscope.tasks.core import Dropped, Instance, Task, TaskError, TaskSuite, is_missing, name_problem
from taskscope.tasks.splits import cap_instances


class RecordFields(BaseModel):
    """Which record key holds what (``fields=`` option of ``jsonl:`` and ``hf:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = "task"
    instance_id: str = "instance_id"
    prompt: str = "prompt"
    input: str = "input"
    targets: str = "targets"
    cluster: str = "cluster"


def record_fields(value: RecordFields | Mapping[str, str] | None, *, file: str | None) -> RecordFields:
    """A :class:`RecordFields` from a mapping (unknown keys name the field in a :class:`TaskError`)."""
    if isinstance(value, RecordFields):
        return value
    try:
        return RecordFields.model_validate(dict(value or {}))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TaskError(f"bad field mapping: {first['msg']}; known: {sorted(RecordFields.model_fields)}",
                        file=file, field=f"fields.{where}" if where else "fields") from None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)) and not is_missing(value):
        return str(value)
    return None


def _targets(value: Any) -> tuple[str, ...] | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    texts = [_text(v) for v in values]
    return None if not texts or any(t is None for t in texts) else tuple(texts)  # type: ignore[misc]


class _TaskBuilder:
    def __init__(self, name: str, cluster: str | None, prompts: bool) -> None:
        self.name, self.cluster, self.prompts = name, cluster, prompts
        self.instances: list[Instance] = []
        self.ids: set[str] = set()


def suite_from_records(
    records: Iterable[tuple[str, Any]],  # a record may be the TaskError of a reader that could not decode it
    *,
    name: str,
    file: str | None,
    source: str,
    fields: RecordFields | Mapping[str, str] | None = None,
    default_task: str | None = None,
    definition: str = "",
    max_records: int | None = None,
    n_instances: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> TaskSuite:
    """A suite from ``(where, record)`` pairs (``where`` e.g. ``"line 3"``); see the module docstring."""
    keys = record_fields(fields, file=file)
    if max_records is not None and max_records < 1:
        raise TaskError(f"max_records must be at least 1, got {max_records}", file=file, field="max_records")
    chosen = records if max_records is None else itertools.islice(records, max_records)
    builders: dict[str, _TaskBuilder] = {}
    bad: dict[str, list[str]] = {}
    reasons: list[str] = []
    for where, record in chosen:
        try:
            _add(builders, where, record, keys, default_task, file)
        except TaskError as err:
            if not skip_bad:
                raise
            bad.setdefault(err.task or "?", []).append(where)
            reasons.append(f"{where}: {err.detail}")
    if not builders:
        detail = f"every record was bad, e.g. {reasons[0]}" if reasons else "no records"
        raise TaskError(f"{source} source read {detail}", file=file, field="records")
    dropped = tuple(Dropped(task=task, reason=f"bad records skipped (skip_bad), e.g. {reasons[0]}", file=file,
                            records=tuple(wheres)) for task, wheres in bad.items())
    if dropped:
        warnings.warn(f"{source}: skipped {len(reasons)} bad record(s), e.g. {reasons[0]}", stacklevel=3)
    tasks = []
    for builder in builders.values():
        task = Task(name=builder.name, instances=tuple(builder.instances),
                    clusters=(builder.cluster,) if builder.cluster else (), definition=definition, source=source,
                    metadata={**(metadata or {}), "file": file, "prompts": builder.prompts,
                              "prompt_format": builder.instances[0].fields.get("format") if builder.prompts else None})
        tasks.append(cap_instances(task, n_instances, seed) if n_instances is not None else task)
    return TaskSuite(name=name, tasks=tuple(tasks), dropped=dropped)


def _add(builders: dict[str, _TaskBuilder], where: str, record: Any, keys: RecordFields, default_task: str | None,
         file: str | None) -> None:
    """Step 2 and 3 for one record: check it and append it to its task."""
    if isinstance(record, TaskError):  # the reader could not decode it
        raise record
    if not isinstance(record, Mapping):
        raise TaskError(f"{where}: a record must be an object, got {type(record).__name__}", file=file,
                        task=default_task)
    task = _text(record.get(keys.task)) if keys.task in record else default_task
    if not task:
        raise TaskError(f"{where}: record has no task name in field {keys.task!r} and the source names no "
                        "default task", file=file, field=keys.task)
    prompts = keys.prompt in record
    text_key = keys.prompt if prompts else keys.input
    if text_key not in record:
        raise TaskError(f"{where}: record has neither {keys.prompt!r} nor {keys.input!r}; it has {sorted(record)} "
                        "(map yours with fields: {prompt: ...} or {input: ...})", file=file, task=task,
                        field=keys.input)
    text = record[text_key]
    if not isinstance(text, str):
        raise TaskError(f"{where}: {text_key!r} must be a string, got {type(text).__name__}", file=file, task=task,
                        field=text_key)
    if keys.targets not in record:
        raise TaskError(f"{where}: record has no {keys.targets!r}; it has {sorted(record)} "
                        "(map yours with fields: {targets: ...})", file=file, task=task, field=keys.targets)
    targets = _targets(record[keys.targets])
    if not targets:
        raise TaskError(f"{where}: {keys.targets!r} must be a non-empty string or list of strings", file=file,
                        task=task, field=keys.targets)
    builder = builders.get(task)
    if builder is None:
        problem = name_problem(task)
        if problem:
            raise TaskError(f"{where}: task name {task!r} {problem}", file=file, task=task, field=keys.task)
        cluster = _text(record.get(keys.cluster))
        builder = builders[task] = _TaskBuilder(task, cluster, prompts)
    if prompts != builder.prompts:
        raise TaskError(f"{where}: task mixes records with {keys.prompt!r} (whole prompts) and with {keys.input!r} "
                        "(queries)", file=file, task=task, field=text_key)
    raw_id = record.get(keys.instance_id)
    inst_id = _text(raw_id) if raw_id is not None else f"{task}-{len(builder.instances)}"
    if not inst_id:
        raise TaskError(f"{where}: instance id must be a string or number", file=file, task=task,
                        field=keys.instance_id)
    if inst_id in builder.ids:
        raise TaskError(f"{where}: duplicate instance id {inst_id!r}", file=file, task=task, field=keys.instance_id)
    builder.ids.add(inst_id)
    used = {keys.task, keys.instance_id, text_key, keys.targets, keys.cluster}
    extra = {k: v for k, v in record.items() if k not in used}
    builder.instances.append(Instance(id=inst_id, input=text, outputs=targets, fields=extra))
