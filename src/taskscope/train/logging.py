"""Training logs: JSONL records, TensorBoard scalars and a rich progress bar with ETA.

One record per line in ``out_dir/log.jsonl``; kinds: ``"train"`` (step, lr, loss, per-task train loss
``task_loss``, and ``p`` = P_s(K) when a sampler is used), ``"eval"`` (per-task validation loss
``task_loss``).  The same numbers go to TensorBoard under ``out_dir/tensorboard`` as ``train/loss``,
``train/loss/<task>``, ``eval/loss/<task>``, ``sampler/p/<task>``, ``train/lr``.  A `TrainLogger` starting at
step ``s`` (0 for a fresh start, the checkpoint's step on resume) first drops the JSONL records after ``s``
(`truncate_log`) and opens TensorBoard with ``purge_step=s``, so a run killed after logging steps it never
checkpointed does not log them twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from taskscope.common.files import atomic_write_text
from taskscope.common.progress import progress_bar

LOG_FILE = "log.jsonl"


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only the records of ``path`` with ``step <= last_step`` (atomic rewrite)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


class TrainLogger:
    """JSONL + TensorBoard + progress bar; a no-op on processes other than the main one."""

    def __init__(self, out_dir: Path, *, enabled: bool, total_steps: int, start_step: int, progress: bool) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / LOG_FILE
        self.writer = None
        if enabled:
            truncate_log(self.path, start_step)
            self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step)
        self.progress = None
        if enabled and progress:
            self.progress = progress_bar("loss {task.fields[loss]}")
            self.task_id = self.progress.add_task("training", total=total_steps, completed=start_step, loss="-")
            self.progress.start()

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        step, kind = record["step"], record["kind"]
        assert self.writer is not None
        if "loss" in record:
            self.writer.add_scalar(f"{kind}/loss", record["loss"], step)
        if "lr" in record:
            self.writer.add_scalar(f"{kind}/lr", record["lr"], step)
        for task, value in record.get("task_loss", {}).items():
            self.writer.add_scalar(f"{kind}/loss/{task}", value, step)
        for task, value in record.get("p", {}).items():
            self.writer.add_scalar(f"sampler/p/{task}", value, step)
        if self.progress is not None and kind == "train":
            self.progress.update(self.task_id, loss=f"{record['loss']:.4f}")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.writer is not None:
            self.writer.close()
