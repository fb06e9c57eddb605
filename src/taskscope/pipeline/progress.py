"""Progress bars with ETA (rich) and the run's log file."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from taskscope.common.progress import progress_bar

T = TypeVar("T")
LOGGER_NAME = "taskscope.pipeline"
logger = logging.getLogger(LOGGER_NAME)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` under a progress bar with elapsed time and ETA; each step is also logged."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    with progress_bar() as progress:
        bar = progress.add_task(description, total=total)
        for i, item in enumerate(items, 1):
            yield item
            progress.advance(bar)
            logger.info("%s: %d/%d", description, i, total)


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Send ``taskscope`` logs to ``run_dir/logs/run.log`` (appending); returns the handler to detach later."""
    log_dir = Path(run_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("taskscope")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger("taskscope").removeHandler(handler)
    handler.close()
