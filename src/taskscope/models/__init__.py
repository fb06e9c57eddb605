"""taskscope.models: load language models from one spec string, tiny test models, LoRA adapters.

See docs/models.md for the spec forms, the embedded-model cache and the fingerprint.
"""

from .loaded import LoadedModel
from .loading import load_model
from .lora import add_lora, load_adapter, merge, save_adapter
from .spec import ModelSpec, ModelSpecError, parse_spec
from .tiny import tiny_model

__all__ = [
    "LoadedModel",
    "ModelSpec",
    "ModelSpecError",
    "add_lora",
    "load_adapter",
    "load_model",
    "merge",
    "parse_spec",
    "save_adapter",
    "tiny_model",
]
