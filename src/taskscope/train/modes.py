"""The three ways the studies train a base LM, all on top of `loop.train`.

* `train_control`: one control model C_t per task, each from a fresh base model (``loaded_factory()``),
  into ``out_root/<task>``; a task whose ``final`` checkpoint exists is skipped, an interrupted one resumes,
  so a whole suite can be re-run until done.
* `train_multitask`: one model on all tasks, each step's examples drawn from the task sampler's P_s(K)
  (``config.sampler``, default ``proportional``), optionally mixed with unsupervised steps.
* `train_fewshot`: LoRA fine-tuning on 0..40 examples of one unseen task (the task context, if any, is already
  in each prompt); 0 examples means no training and the base model is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from taskscope.models.loaded import LoadedModel

from .checkpoint import is_finished
from .config import TrainConfig
from .data import ExampleLike, TrainDataError
from .logging import Tracking
from .loop import TrainResult, train

MAX_FEWSHOT = 40


def _check_tasks(data: Mapping[str, Sequence[ExampleLike]]) -> None:
    if not data:
        raise TrainDataError("no tasks to train on")
    empty = [task for task, examples in data.items() if len(examples) == 0]
    if empty:
        raise TrainDataError(f"task(s) left without training examples: {', '.join(map(repr, empty))}")


def train_control(
    loaded_factory: Callable[[], LoadedModel],
    suite_examples: Mapping[str, Sequence[ExampleLike]],
    config: TrainConfig,
    out_root: str | Path,
    *,
    validation: Mapping[str, Sequence[ExampleLike]] | None = None,
    progress: bool = True,
    tracking: Tracking | None = None,
) -> dict[str, TrainResult]:
    """Train one control model per task of ``suite_examples`` into ``out_root/<task>``; skip finished ones.

    Every task is checked for examples before any training starts.  Returns task -> `TrainResult`.
    ``tracking`` names the trackers' run: as given for one task, ``<run_name>/<task>`` for several.
    """
    _check_tasks(suite_examples)
    results = {}
    for task, examples in suite_examples.items():
        out_dir = Path(out_root) / task
        task_validation = {task: validation[task]} if validation and task in validation else None
        if is_finished(out_dir / "final"):
            results[task] = TrainResult.from_final(out_dir)
            continue
        task_tracking = tracking
        if tracking is not None and len(suite_examples) > 1:
            task_tracking = replace(tracking, run_name=f"{tracking.run_name}/{task}".lstrip("/"))
        results[task] = train(loaded_factory(), {task: examples}, config, out_dir,
                              validation=task_validation, progress=progress, tracking=task_tracking)
    return results


def train_multitask(
    loaded: LoadedModel,
    data: Mapping[str, Sequence[ExampleLike]],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    validation: Mapping[str, Sequence[ExampleLike]] | None = None,
    text_source: str | Path | Sequence[str] | None = None,
    progress: bool = True,
    tracking: Tracking | None = None,
) -> TrainResult:
    """Instruction-tune ``loaded`` on every task of ``data`` with the task sampler of ``config``."""
    _check_tasks(data)
    if config.sampler is None:
        config = config.model_copy(update={"sampler": "proportional"})
    return train(loaded, data, config, out_dir, validation=validation, text_source=text_source, progress=progress,
                 tracking=tracking)


def train_fewshot(
    loaded: LoadedModel,
    examples: Sequence[ExampleLike],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = False,
) -> LoadedModel:
    """Fine-tune ``loaded`` (LoRA per ``config``) on the few-shot ``examples`` of one task; return the model.

    With no examples nothing is trained and ``loaded`` is returned as it is.  More than 40 examples, examples
    of several tasks, or a config without LoRA are refused.
    """
    if len(examples) == 0:
        return loaded
    names = sorted({example.task for example in examples})
    if len(names) != 1:
        raise TrainDataError(f"few-shot examples must come from one task, got {', '.join(names)}")
    name = names[0]
    if len(examples) > MAX_FEWSHOT:
        raise TrainDataError(f"task {name!r}: {len(examples)} few-shot examples > {MAX_FEWSHOT}")
    if config.lora is None:
        raise ValueError("few-shot fine-tuning uses LoRA: config.lora must be set")
    train(loaded, {name: list(examples)}, config, out_dir, progress=progress)
    return loaded
