"""Task selection and the tasks stage's record, shared by every study kind.

Order in :func:`select_tasks`: keep ``tasks`` (in their order), then ``clusters``; the kind caps what is left.
A tasks stage writes ``tasks.json`` (formatted examples as plain dicts, read back by :func:`read_tasks` and
:func:`examples`) and ``dropped.json`` (:func:`write_dropped`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_json
from taskscope.pipeline.manifest import DROPPED_FILE
from taskscope.pipeline.progress import logger
from taskscope.studies.common.config import TaskSource

TASKS_FILE = "tasks.json"


def load_source(sel: TaskSource):
    """The task source of ``sel`` as loaded (with what its loader dropped)."""
    from taskscope.tasks import load_suite

    return load_suite(sel.source, **sel.options)


def select_tasks(suite, sel: TaskSource):
    """Keep ``sel.tasks`` (in order), then the tasks in ``sel.clusters``, of a loaded ``suite``."""
    if sel.tasks is not None:
        suite = suite.select(sel.tasks)
    if sel.clusters is not None:
        suite = suite.by_cluster(sel.clusters)
    return suite


def write_dropped(suite, out_dir: Path) -> dict[str, Any]:
    """Write ``suite.dropped_summary()`` to ``out_dir/dropped.json`` (the run manifest counts it); warn when
    the loader or its filters dropped any task or record."""
    summary = suite.dropped_summary()
    atomic_write_json(out_dir / DROPPED_FILE, summary)
    if summary["n_tasks"] or summary["n_records"]:
        logger.warning("tasks: the loader of suite %r dropped %d task(s) and %d record(s); see %s in %s",
                       suite.name, summary["n_tasks"], summary["n_records"], DROPPED_FILE, out_dir)
    return summary


def read_tasks(folder: Path) -> dict[str, Any]:
    """The ``tasks.json`` of a tasks stage folder."""
    return json.loads((Path(folder) / TASKS_FILE).read_text())


def examples(records: Sequence[dict]):
    """Formatted examples back from their ``tasks.json`` records."""
    from taskscope.tasks.formats import FormattedExample

    return [FormattedExample(**{**r, "targets": tuple(r["targets"])}) for r in records]

