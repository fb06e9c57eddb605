"""One look for every progress bar: label, description, bar, done/total, elapsed time and ETA (rich).

A bar's description is prefixed with the current *progress label*, the stage and item a job belongs to
(``train control models: qa_capitals · training``), set by the pipeline around each item job with
:func:`progress_label`; so twelve bars of one stage say which model and task each one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_LABEL: ContextVar[str] = ContextVar("taskscope_progress_label", default="")


@contextmanager
def progress_label(label: str) -> Iterator[None]:
    """Within the block, every new bar's description starts with ``label`` (nested labels join with `` · ``)."""
    outer = _LABEL.get()
    token = _LABEL.set(f"{outer} · {label}" if outer else label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def labelled(description: str) -> str:
    """``description`` behind the current progress label, if any."""
    label = escape(_LABEL.get())  # a task name like "x[1]" is not rich markup
    return f"{label} · {description}" if label else description


class LabelledProgress(Progress):
    """A rich ``Progress`` whose new tasks carry the current progress label."""

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        return super().add_task(labelled(description), *args, **kwargs)


def progress_bar(*extra: str | ProgressColumn, disable: bool = False) -> Progress:
    """A ``Progress`` with the standard columns; ``extra`` (e.g. ``"tokens"`` or ``"loss {task.fields[loss]}"``)
    goes between the count and the times."""
    columns = [TextColumn(c) if isinstance(c, str) else c for c in extra]
    return LabelledProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), disable=disable,
                            transient=False)
