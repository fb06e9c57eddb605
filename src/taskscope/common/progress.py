"""One look for every progress bar: description, bar, done/total, elapsed time and ETA (rich)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(*extra: str | ProgressColumn, disable: bool = False) -> Progress:
    """A ``Progress`` with the standard columns; ``extra`` (e.g. ``"tokens"`` or ``"loss {task.fields[loss]}"``)
    goes between the count and the times."""
    columns = [TextColumn(c) if isinstance(c, str) else c for c in extra]
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), disable=disable, transient=False)
