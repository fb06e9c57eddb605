"""GGUF files: dequantise through transformers (``gguf_file=``) into an ordinary float32 model.

A model loaded with ``gguf_file=`` keeps a GGUF ``quantization_config`` and cannot be saved with
``save_pretrained``; `plain_copy` rebuilds the same architecture from the config without it and copies the
dequantised weights in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
)

from .spec import ModelSpecError


def model_class(config: Any) -> type:
    """``AutoModelForSeq2SeqLM`` for encoder-decoder configs (T5), ``AutoModelForCausalLM`` otherwise."""
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def plain_copy(model: Any) -> Any:
    """Copy a GGUF-loaded model into an ordinary float32 model of the same class, without the quantisation
    config (a model loaded with ``gguf_file=`` cannot be saved with ``save_pretrained``)."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = model_class(config).from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


def load_gguf(path: str | Path, spec: str | None = None) -> tuple[Any, Any]:
    """Dequantise the GGUF file at ``path`` into a plain float32 model and its tokenizer."""
    path = Path(path).expanduser()
    spec = spec or f"gguf:{path}"
    if not path.is_file():
        raise ModelSpecError(f"model spec {spec!r}: GGUF file {str(path)!r} does not exist")
    if path.suffix != ".gguf":
        raise ModelSpecError(f"model spec {spec!r}: {str(path)!r} is not a .gguf file")
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    quantised = model_class(config).from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return plain_copy(quantised), tokenizer
