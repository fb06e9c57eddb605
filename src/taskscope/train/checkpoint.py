"""Checkpoints for trajectory studies and exact resume; every directory is written atomically.

Layout of ``out_dir/checkpoints/step-000100/`` (and of ``out_dir/final/``, which holds the weights and
``result.json`` only)::

    adapter/               LoRA runs: adapter_config.json + adapter_model.safetensors (PEFT format)
    model/                 full fine-tuning: config.json + model*.safetensors (save_pretrained)
    optimizer.pt           optimizer and scheduler state dicts (torch.save; loaded with weights_only=True)
    rng-rank0.pt ...       per process: torch, python `random` and numpy global RNG states
    trainer_state.json     step, total steps, data-order cursor, sampler state, config
    files.json             sha256 of every other file (written last, before the move)

Writing order: everything goes into ``checkpoints/.tmp-step-000100/``, ``files.json`` lists the digests, and
the finished directory is moved into place with ``os.replace``, so a run killed at any moment leaves either a
complete checkpoint or none (stale ``.tmp-*`` directories are ignored and replaced).  `latest_checkpoint`
returns the highest step whose files still match ``files.json``; newer damaged ones are skipped with a
warning naming the checkpoint and the file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from taskscope.common.files import atomic_write_text, file_sha256

from .objective import unwrap_peft

CHECKPOINTS = "checkpoints"
FINAL = "final"
STATE_FILE = "trainer_state.json"
FILES = "files.json"
logger = logging.getLogger("taskscope.train")


def step_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step-{step:06d}"


def staging_dir(final_dir: Path) -> Path:
    return final_dir.parent / f".tmp-{final_dir.name}"


def checkpoint_step(directory: Path) -> int:
    """The step of checkpoint folder ``step-000100`` (100)."""
    return int(Path(directory).name.split("-")[1])


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The intact checkpoint (`checkpoint_problems`) with the highest step under ``out_dir/checkpoints``, or None.

    Every newer checkpoint that fails the check is skipped with a warning naming it and the damaged file.
    """
    root = Path(out_dir) / CHECKPOINTS
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
    for candidate in sorted(done, key=checkpoint_step, reverse=True):
        problems = checkpoint_problems(candidate)
        if not problems:
            return candidate
        logger.warning("checkpoint %s is damaged (%s); skipping it and resuming from an older one",
                       candidate, "; ".join(problems))
    return None


def is_finished(final_dir: Path) -> bool:
    """Whether ``final_dir`` holds a finished run (``result.json``) whose files are intact; damage is logged
    (the run then trains again from its newest intact checkpoint and rewrites ``final/``)."""
    if not (Path(final_dir) / "result.json").is_file():
        return False
    problems = checkpoint_problems(final_dir)
    if problems:
        logger.warning("final weights in %s are damaged (%s); training again from the newest intact checkpoint",
                       final_dir, "; ".join(problems))
    return not problems


def file_digests(directory: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``directory`` but ``files.json``."""
    return {p.relative_to(directory).as_posix(): file_sha256(p) for p in sorted(Path(directory).rglob("*"))
            if p.is_file() and p.relative_to(directory).as_posix() != FILES}


def checkpoint_problems(directory: Path) -> list[str]:
    """What is wrong with a checkpoint: files missing, changed or truncated against ``files.json`` (empty: intact).

    A checkpoint written before ``files.json`` existed cannot be checked and counts as intact.
    """
    directory = Path(directory)
    listing = directory / FILES
    if not listing.is_file():
        return []
    recorded, found = json.loads(listing.read_text()), file_digests(directory)
    return [f"{name}: {'missing' if name not in found else 'sha256 differs (changed or truncated)'}"
            for name in sorted(recorded) if found.get(name) != recorded[name]]


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_weights(model: Any, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Adapter (LoRA) or full model weights as safetensors into ``directory`` (``state_dict``: gathered FSDP weights)."""
    extra = {} if state_dict is None else {"state_dict": state_dict}
    if is_lora(model):
        model.save_pretrained(directory / "adapter", safe_serialization=True, **extra)
    else:
        unwrap_peft(model).save_pretrained(directory / "model", safe_serialization=True, **extra)


def load_weights(model: Any, directory: Path) -> None:
    """Load weights written by `save_weights` into ``model`` in place (bit-exact)."""
    if is_lora(model):
        set_peft_model_state_dict(model, load_file(directory / "adapter" / "adapter_model.safetensors"))
        return
    state: dict[str, torch.Tensor] = {}
    for path in sorted((directory / "model").glob("*.safetensors")):
        state.update(load_file(path))
    hf = unwrap_peft(model)
    result = hf.load_state_dict(state, strict=False)
    tied = set(getattr(hf, "_tied_weights_keys", None) or [])
    missing = [key for key in result.missing_keys if key not in tied]
    if missing or result.unexpected_keys:
        raise ValueError(f"checkpoint {directory}: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")


def rng_state() -> dict[str, Any]:
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def prepare_staging(final_dir: Path) -> Path:
    """Create an empty staging directory for ``final_dir`` (removing a stale one from a killed run)."""
    staging = staging_dir(final_dir)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, final_dir: Path) -> None:
    """List the staged files' digests in ``files.json``, then move the directory into place atomically
    (replacing an older ``final_dir``)."""
    write_json(staging / FILES, file_digests(staging))
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(staging, final_dir)


def write_training_state(staging: Path, *, optimizer: Any, scheduler: Any, trainer_state: dict[str, Any]) -> None:
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optimizer.pt")
    write_json(staging / STATE_FILE, trainer_state)


def write_rank_rng(staging: Path, rank: int) -> None:
    torch.save(rng_state(), staging / f"rng-rank{rank}.pt")


def read_training_state(directory: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(optimizer+scheduler states, rng state of ``rank``, trainer_state) of a checkpoint."""
    states = torch.load(directory / "optimizer.pt", weights_only=True)
    rng_path = directory / f"rng-rank{rank}.pt"
    if not rng_path.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no RNG state for process {rank} (another world size?)")
    rng = torch.load(rng_path, weights_only=True)
    return states, rng, json.loads((directory / STATE_FILE).read_text())
