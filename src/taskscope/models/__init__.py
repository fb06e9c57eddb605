"""taskscope.models: load language models from one spec string, tiny test models, LoRA adapters."""

from .loaded import LoadedModel

__all__ = ["LoadedModel"]
