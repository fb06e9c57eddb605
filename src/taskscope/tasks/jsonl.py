"""The ``jsonl:PATH`` source: one instance per line, in the format ``taskscope tasks export`` writes.

Each line is a JSON object (see :mod:`taskscope.tasks.records` for the keys and the ``fields`` mapping)::

    {"task": "nli", "instance_id": "nli-3", "prompt": "...", "targets": ["yes"], "template_index": 0,
     "cluster": "nli", "format": "definition_exemplars"}

Exported records hold whole prompts: format such a suite with prompt kind ``prompt`` to see them verbatim, which
makes ``tasks export`` -> ``jsonl:`` -> ``tasks export --format prompt`` reproduce the file's tasks, ids, prompts
and targets.  Your own records may hold ``input`` (a query) instead of ``prompt``, to be formatted as usual.

Order of operations in :func:`load_jsonl`: open the file; read it line by line, skipping blank lines and
stopping after ``max_records`` records (the rest of the file is never read); decode each line (malformed JSON
raises :class:`TaskError` naming the file and the line, or with ``skip_bad`` is skipped); then
:func:`~taskscope.tasks.records.suite_from_records`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from taskscope.tasks.core import TaskError, TaskSuite
from taskscope.tasks.records import suite_from_records
from taskscope.tasks.registry import register_source

def _lines(path: Path) -> Iterator[tuple[str, Any]]:
    """``("line N", record)`` for every non-blank line, read lazily; a malformed line's record is its TaskError."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise TaskError(f"cannot read JSONL file: {err.strerror or err}", file=str(path), field="path") from err
    with handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as err:
                raise TaskError(f"line {number + 1}: not UTF-8 text ({err.reason})", file=str(path),
                                field="json") from err
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                record = TaskError(f"line {number}: malformed JSON at column {err.colno}: {err.msg}",
                                   file=str(path), field="json")
            yield f"line {number}", record


@register_source("jsonl")
def load_jsonl(
    path: str | None,
    *,
    fields: Mapping[str, str] | None = None,
    task: str | None = None,
    definition: str = "",
    max_records: int | None = None,
    n_instances: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
) -> TaskSuite:
    """Load ``path``; ``task`` names the task of records without a task field (default: the file's stem).
    See the module docstring for the order of operations."""
    if not path:
        raise TaskError("the jsonl source needs a file: 'jsonl:PATH'", field="spec")
    file = Path(path).expanduser()
    if not file.is_file():
        raise TaskError("JSONL file not found", file=str(file), field="path")
    return suite_from_records(_lines(file), name=f"jsonl:{path}", file=str(file), source="jsonl", fields=fields,
                              default_task=task or file.stem, definition=definition, max_records=max_records,
                              n_instances=n_instances, seed=seed, skip_bad=skip_bad)
