"""Training logs: JSONL records, experiment trackers through accelerate, and a rich progress bar with ETA.

One record per line in ``out_dir/log.jsonl``; kinds: ``"train"`` (step, lr, loss, per-task train loss
``task_loss``, and ``p`` = P_s(K) when a sampler is used), ``"eval"`` (per-task validation loss
``task_loss``).  The same numbers go to the trackers of ``TrainConfig.log_with`` (accelerate's
``Accelerator(log_with=...)``: ``tensorboard``, ``wandb``, ``mlflow``, ``trackio``) as the scalars
``train/loss``, ``train/loss/<task>``, ``eval/loss/<task>``, ``sampler/p/<task>``, ``train/lr``.

Where (:class:`Tracking`): TensorBoard writes ``logs_dir/tensorboard/<run_name>`` - a study passes its run
folder's ``logs`` and names like ``controls/<task>``, so ``tensorboard --logdir RUN/logs/tensorboard`` shows
every model of the run; a bare :func:`~taskscope.train.loop.train` call logs to ``out_dir/tensorboard``.
W&B keeps its files under ``logs_dir``, MLflow's file store is ``logs_dir/mlflow``; both (and Trackio) get
``project`` and ``run_name``.  ``log_with: null`` (the default) means TensorBoard when it is installed, else the
JSONL log only (logged once, as a skipped fast path is).

A `TrainLogger` starting at step ``s`` (0 for a fresh start, the checkpoint's step on resume) first drops the
JSONL records after ``s`` (`truncate_log`) and opens TensorBoard with ``purge_step=s``, so a run killed after
logging steps it never checkpointed does not log them twice (and a fresh start hides an older run's curve).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_text
from taskscope.common.progress import progress_bar

LOG_FILE = "log.jsonl"
TRACKERS: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
                            "trackio": "trackio"}  # tracker -> the package it needs
_logger = logging.getLogger("taskscope.train")


def tracker_installed(name: str) -> bool:
    """Whether the package tracker ``name`` needs can be imported (TensorBoard: ``tensorboard`` or ``tensorboardX``)."""
    packages = ("tensorboard", "tensorboardX") if name == "tensorboard" else (TRACKERS[name],)
    return any(importlib.util.find_spec(package) is not None for package in packages)


def missing_trackers(names: list[str] | tuple[str, ...]) -> list[str]:
    """The trackers of ``names`` whose package is not installed."""
    return [name for name in names if not tracker_installed(name)]


def resolve_trackers(log_with: list[str] | tuple[str, ...] | None) -> list[str]:
    """``log_with``, or for ``None`` TensorBoard when installed (else none, logged once)."""
    if log_with is not None:
        return list(log_with)
    if tracker_installed("tensorboard"):
        return ["tensorboard"]
    _logger.info("log_with: tensorboard is not installed (pip install 'taskscope[tensorboard]'); "
                 "training logs go to log.jsonl only")
    return []


@dataclass(frozen=True)
class Tracking:
    """Where a training run's tracker output goes (see the module docstring)."""

    logs_dir: Path
    run_name: str = ""
    project: str = "taskscope"

    @classmethod
    def for_out_dir(cls, out_dir: Path) -> Tracking:
        """The default of a bare ``train`` call: TensorBoard in ``out_dir/tensorboard``."""
        return cls(logs_dir=Path(out_dir))

    def accelerator_kwargs(self, trackers: list[str], start_step: int) -> dict[str, Any]:
        """``Accelerator(log_with=..., project_dir=...)`` for ``trackers``: TensorBoard as a ready tracker (its own
        folder, ``purge_step=start_step``), the others by name; ``{}`` for none."""
        from accelerate.tracking import TensorBoardTracker

        if not trackers:
            return {}
        log_with = [TensorBoardTracker(self.run_name, str(self.logs_dir / "tensorboard"), purge_step=start_step)
                    if name == "tensorboard" else name for name in trackers]
        return {"log_with": log_with, "project_dir": str(self.logs_dir / "mlflow")}

    def start(self, accelerator: Any, config: Any) -> None:
        """``init_trackers`` (project, each tracker's run name, W&B's folder), then the flattened training config
        as hyper-parameters of every tracker but TensorBoard (whose hparams would add two timestamped folders, i.e.
        two more "runs", per model; the config is in the run's study.yaml and each checkpoint)."""
        if not accelerator.log_with:
            return
        name = self.run_name or None
        accelerator.init_trackers(self.project, init_kwargs={"wandb": {"name": name, "dir": str(self.logs_dir)},
                                                             "mlflow": {"run_name": name}, "trackio": {"name": name}})
        for tracker in accelerator.trackers:
            if tracker.name != "tensorboard":
                tracker.store_init_configuration(hyperparameters(config))


def hyperparameters(config: Any) -> dict[str, Any]:
    """A training config flattened to the scalar values trackers store (``lora.r``; lists as text)."""
    flat: dict[str, Any] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (bool, int, float, str)) or value is None:
            flat[prefix] = "none" if value is None else value
        else:
            flat[prefix] = json.dumps(value, default=str)

    add("", config.model_dump(mode="json"))
    return flat


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only the records of ``path`` with ``step <= last_step`` (atomic rewrite)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The tracker scalars of one JSONL record (names in the module docstring)."""
    kind = record["kind"]
    values = {f"{kind}/{name}": float(record[name]) for name in ("loss", "lr") if name in record}
    values.update({f"{kind}/loss/{task}": float(v) for task, v in record.get("task_loss", {}).items()})
    values.update({f"sampler/p/{task}": float(v) for task, v in record.get("p", {}).items()})
    return values


class TrainLogger:
    """JSONL + the accelerator's trackers + progress bar; a no-op on processes other than the main one."""

    def __init__(self, out_dir: Path, *, enabled: bool, total_steps: int, start_step: int, progress: bool,
                 accelerator: Any = None) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / LOG_FILE
        self.accelerator = accelerator if accelerator is not None and accelerator.trackers else None
        if enabled:
            truncate_log(self.path, start_step)
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
        if self.accelerator is not None:
            self.accelerator.log(scalars(record), step=record["step"])
        if self.progress is not None and record["kind"] == "train":
            self.progress.update(self.task_id, loss=f"{record['loss']:.4f}")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.accelerator is not None:  # not end_training(): that also destroys the process group (DDP)
            for tracker in self.accelerator.trackers:
                tracker.finish()
