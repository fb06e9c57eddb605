"""Checks of a study's task selection against the loaded task source, shared by every study kind."""

from __future__ import annotations

from typing import Any

from taskscope.pipeline.validate import Problem, clusters_of, load_source, name_problems
from taskscope.studies.common.config import TaskSource


def selection_problems(sel: TaskSource, where: str = "tasks") -> tuple[Any, list[Problem]]:
    """Load ``sel``'s source (problems of its prefix and options), then check ``tasks`` and ``clusters`` against it;
    returns the loaded suite (None when it did not load) and the problems."""
    suite, problems = load_source(sel.source, sel.options, where)
    if suite is None:
        return None, problems
    problems += name_problems(f"{where}.tasks", sel.tasks, suite.names, "task")
    problems += name_problems(f"{where}.clusters", sel.clusters, clusters_of(suite), "cluster")
    return suite, problems
