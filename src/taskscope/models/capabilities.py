"""What the installed libraries can do, found by trying the real call once (never by reading signatures).

`cache_keyword(stack)` answers "through which keyword does this decoder stack continue a KV cache?".
transformers renamed the keyword (``past_key_values`` up to 5.23, ``cache`` from 5.24, the old name
still accepted with a deprecation message until its announced removal), so the project asks the stack
itself, in this order:

1. run the stack on one token with an empty ``DynamicCache`` passed as ``cache=``; if the cache now
   holds that token, the answer is ``"cache"``;
2. otherwise the same with ``past_key_values=`` (an older transformers);
3. otherwise ``None``: the stack cannot continue a cache (an encoder, a custom model), and callers
   take their unshared path and say so (:mod:`taskscope.common.fastpaths`).

Warnings raised by a probe that worked count against it (a deprecated spelling is tried last), so
the project's own calls never trigger a FutureWarning on the pinned stack. The answer is remembered
per stack class and transformers version.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import transformers
from torch import nn
from transformers import DynamicCache

CACHE_KEYWORDS = ("cache", "past_key_values")

_KNOWN: dict[tuple[type, str], str | None] = {}


def _fills_cache(stack: nn.Module, keyword: str, device: torch.device) -> bool:
    cache = DynamicCache()
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        try:
            stack(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, **{keyword: cache})
        except (TypeError, ValueError):
            return False
    deprecated = any(issubclass(w.category, (FutureWarning, DeprecationWarning)) for w in caught)
    return cache.get_seq_length() == 1 and not deprecated


def cache_keyword(stack: nn.Module) -> str | None:
    """The keyword through which ``stack`` continues a KV cache, or ``None`` (module docstring)."""
    key = (type(stack), transformers.__version__)
    if key not in _KNOWN:
        embeddings = stack.get_input_embeddings() if hasattr(stack, "get_input_embeddings") else None
        device = embeddings.weight.device if embeddings is not None else torch.device("cpu")
        was_training = stack.training
        stack.eval()
        try:
            _KNOWN[key] = next((k for k in CACHE_KEYWORDS if _fills_cache(stack, k, device)), None)
        finally:
            stack.train(was_training)
    return _KNOWN[key]


def cache_kwargs(stack: nn.Module, cache: Any) -> dict[str, Any]:
    """Keyword arguments that make ``stack`` continue ``cache`` (raises if it cannot; check `cache_keyword`)."""
    keyword = cache_keyword(stack)
    if keyword is None:
        raise TypeError(f"{type(stack).__name__} cannot continue a KV cache")
    return {keyword: cache, "use_cache": True}
