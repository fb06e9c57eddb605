"""Instruction tuning as an item job, and the ``model.json`` record of a trained item, shared by every study kind.

A trained item folder holds ``model.json`` (:data:`CHECKPOINT_FILE`, written by :func:`record_checkpoint`):
``base`` (the base spec), ``kind`` (``lora``: an adapter over the base; ``full``: a whole model folder, with the
base tokenizer saved beside it), ``steps``, ``stop_reason``, ``weights`` (the final weights) and ``checkpoints``
(step -> weights of every saved checkpoint and the final one), paths relative to the item folder.
:func:`trained_spec` / :func:`checkpoint_specs` turn it back into ``load_model`` specs.

Jobs are top-level functions of plain arguments (an executor may ship them); the heavy packages (models, train)
are imported inside them, so this module imports cheaply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_json
from taskscope.studies.common.tasks import examples

CHECKPOINT_FILE = "model.json"


def weights_of(checkpoint: Path, base_spec: str, load: dict) -> tuple[Path, str]:
    """The adapter (LoRA) or model folder of a checkpoint; a full model gets the base tokenizer saved beside it."""
    from taskscope.models import load_model

    if (checkpoint / "adapter" / "adapter_config.json").is_file():
        return checkpoint / "adapter", "lora"
    if not (checkpoint / "model" / "tokenizer_config.json").is_file():
        load_model(base_spec, **load).tokenizer.save_pretrained(checkpoint / "model")
    return checkpoint / "model", "full"


def stop_reason(result) -> str:
    """Why training stopped: the result's ``stop_reason`` (or its ``result.json``'s), else ``"max_steps"``."""
    reason = getattr(result, "stop_reason", None)
    final = Path(result.final_checkpoint) / "result.json"
    if reason is None and final.is_file():
        reason = json.loads(final.read_text()).get("stop_reason")
    return str(reason) if reason else "max_steps"


def record_checkpoint(base_spec: str, load: dict, result, out_dir: Path) -> None:
    """Write ``model.json`` (module docstring) for the training ``result`` whose item folder is ``out_dir``."""
    from taskscope.train.checkpoint import CHECKPOINTS, STATE_FILE

    out_dir = Path(out_dir).resolve()
    final, kind = weights_of(Path(result.final_checkpoint), base_spec, load)
    checkpoints = {}
    for step_dir in sorted((Path(result.final_checkpoint).parent / CHECKPOINTS).glob("step-*")):
        if (step_dir / STATE_FILE).is_file():
            weights, _ = weights_of(step_dir, base_spec, load)
            checkpoints[int(step_dir.name.split("-")[1])] = str(weights.resolve().relative_to(out_dir))
    checkpoints[result.steps] = str(final.resolve().relative_to(out_dir))
    atomic_write_json(out_dir / CHECKPOINT_FILE, {
        "base": base_spec, "kind": kind, "steps": result.steps, "stop_reason": stop_reason(result),
        "weights": checkpoints[result.steps], "checkpoints": checkpoints})


def _spec(base: str, kind: str, weights: Path) -> str:
    return f"{base}+lora:{weights.resolve()}" if kind == "lora" else str(weights.resolve())


def read_checkpoint(item_dir: Path) -> dict[str, Any]:
    return json.loads((Path(item_dir) / CHECKPOINT_FILE).read_text())


def trained_spec(item_dir: Path) -> str:
    """The ``load_model`` spec of a trained item: ``BASE+lora:ADAPTER`` for LoRA, else the model folder."""
    info = read_checkpoint(item_dir)
    return _spec(info["base"], info["kind"], Path(item_dir) / info["weights"])


def checkpoint_specs(item_dir: Path) -> dict[int, str]:
    """Step -> ``load_model`` spec of every saved checkpoint of a trained item, and step 0: its base."""
    info = read_checkpoint(item_dir)
    return {0: info["base"], **{int(step): _spec(info["base"], info["kind"], Path(item_dir) / weights)
                                for step, weights in info["checkpoints"].items()}}


def model_spec(config: Any, stage_dir: Path, name: str) -> str:
    """The ``load_model`` spec of compared model ``name``: the base, or its item of the training stage ``stage_dir``."""
    if config.model_named(name).kind == "pretrained":
        return config.model
    return trained_spec(Path(stage_dir) / "items" / name)


def instruction_tune_job(base_spec: str, load: dict, train_config: dict, data: dict[str, list[dict]],
                         text_source: str | list[str] | None, tracking, out_dir: Path) -> None:
    """Instruction-tune the base on ``data`` (task -> formatted examples) with ``train_multitask``, mixing in
    unsupervised text from ``text_source`` when the config sets ``unsupervised_every``; then ``model.json``."""
    from taskscope.models import load_model
    from taskscope.train.config import TrainConfig
    from taskscope.train.modes import train_multitask

    settings = TrainConfig.model_validate(train_config)
    result = train_multitask(load_model(base_spec, **load),
                             {task: examples(records) for task, records in data.items()}, settings,
                             Path(out_dir) / "train", text_source=text_source if settings.unsupervised_every else None,
                             tracking=tracking)
    record_checkpoint(base_spec, load, result, out_dir)
