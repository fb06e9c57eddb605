"""taskscope.represent: layer-wise hidden states of prompts, and their on-disk cache.

See docs/representations.md for layer indexing, pooling, the padding strategy and the cache layout.
"""

from .backbone import Backbone, find_backbone
from .cache import ActivationCache, ActivationKey, extract_to_cache, hash_prompts
from .extract import POOLINGS, extract_hidden_states

__all__ = [
    "POOLINGS",
    "ActivationCache",
    "ActivationKey",
    "Backbone",
    "extract_hidden_states",
    "extract_to_cache",
    "find_backbone",
    "hash_prompts",
]
