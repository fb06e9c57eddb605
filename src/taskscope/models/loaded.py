"""The `LoadedModel` record and the fingerprint that identifies a model's weights.

The fingerprint is a sha256 hex digest over

1. the model config as canonical JSON (``config.to_json_string(use_diff=False)``, keys sorted), then
2. either the identity of the checkpoint files (for each ``*.safetensors`` file in name order: the file
   name, size and mtime in nanoseconds) when the weights come unchanged from a directory on disk, or the
   weights themselves (every tensor of ``state_dict()`` in name order: name, dtype, shape and raw bytes) for
   models built or changed in memory (tiny models, LoRA-merged or trained models).

After training that changed only some parameters (LoRA: the adapters; the base weights frozen),
``refresh_fingerprint(changed=names)`` chains instead: `taskscope.common.hashing.digest` of the previous
fingerprint, the PEFT adapter configs (when the model has them) and the sha256 of those parameters (name, dtype,
shape, bytes, in name order), so a control's fingerprint costs its adapters' bytes, not the base's 1 GB.

So two loads of the same checkpoint share a fingerprint, the same training of the same model gives the same
fingerprint, and any training step changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taskscope.common.hashing import digest


@dataclass
class LoadedModel:
    """A model ready to use: the HF model, its tokenizer and facts the other packages need.

    ``num_layers`` counts transformer blocks (the decoder's for T5); ``hidden_size`` is the residual width.
    """

    model: Any
    tokenizer: Any
    spec: str
    is_encoder_decoder: bool
    num_layers: int
    hidden_size: int
    fingerprint: str

    def refresh_fingerprint(self, changed: Collection[str] | None = None) -> str:
        """Recompute the fingerprint from the weights in memory (call after training) and return it.

        ``changed``: the names of the only parameters that changed since ``fingerprint`` was set (e.g. the
        trainable ones of a LoRA run): the new fingerprint chains the old one with those (module docstring).
        """
        if changed is None:
            self.fingerprint = fingerprint_from_weights(self.model)
        else:
            self.fingerprint = fingerprint_after_update(self.fingerprint, self.model, changed)
        return self.fingerprint


def _config_json(config: Any) -> str:
    data = json.loads(config.to_json_string(use_diff=False))
    for volatile in ("transformers_version", "_name_or_path", "dtype", "torch_dtype"):
        data.pop(volatile, None)
    return json.dumps(data, sort_keys=True)


def fingerprint_from_files(config: Any, checkpoint_dir: str | Path) -> str:
    """Hash the config and the name, size and mtime of each safetensors file in ``checkpoint_dir``."""
    digest = hashlib.sha256(_config_json(config).encode())
    for path in sorted(Path(checkpoint_dir).glob("*.safetensors")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _hash_tensors(digest: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    """Feed each tensor's name, dtype, shape and raw bytes (in name order) into ``digest``; the bytes go in
    as a buffer view, without a copy."""
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())


def fingerprint_from_weights(model: Any) -> str:
    """Hash the config and every tensor of ``model.state_dict()`` (name, dtype, shape, bytes), in name order."""
    digest = hashlib.sha256(_config_json(model.config).encode())
    _hash_tensors(digest, model.state_dict())
    return digest.hexdigest()


def _adapter_settings(model: Any) -> dict[str, Any]:
    """The PEFT adapter configs of ``model`` as JSON-able dicts (sets, e.g. ``target_modules``, sorted); {} without."""
    adapters = getattr(model, "peft_config", None) or {}
    return {name: {key: sorted(value) if isinstance(value, (set, frozenset)) else value
                   for key, value in adapters[name].to_dict().items()} for name in adapters}


def fingerprint_after_update(previous: str, model: Any, changed: Collection[str]) -> str:
    """``digest([previous, {"adapters": PEFT adapter configs, "changed": sha256 of the parameters named in
    changed (name, dtype, shape, bytes, in name order)}])``; an unknown name raises ``KeyError``."""
    parameters = dict(model.named_parameters())
    tensors = hashlib.sha256()
    _hash_tensors(tensors, {name: parameters[name] for name in changed})
    return digest([previous, {"adapters": _adapter_settings(model), "changed": tensors.hexdigest()}])


def model_dimensions(config: Any) -> tuple[int, int]:
    """Return ``(num_layers, hidden_size)`` from a HF config, reading the text config of multimodal models."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    num_layers = getattr(text, "num_decoder_layers", None) or getattr(text, "num_hidden_layers", None)
    if num_layers is None:
        num_layers = getattr(text, "n_layer", None) or text.num_layers
    hidden_size = getattr(text, "hidden_size", None) or getattr(text, "d_model", None) or text.n_embd
    return int(num_layers), int(hidden_size)
