"""Find the part of a Hugging Face model whose hidden states we read: the stack of blocks, without the LM head.

`find_backbone` resolves, in this order:

1. the text stack: the encoder for encoder-decoder models (``config.is_encoder_decoder``, via
   ``get_encoder()``), otherwise the decoder via ``get_decoder()`` (which already unwraps ``model.model``,
   ``model.transformer``, ``language_model`` of multimodal wrappers and, through attribute forwarding, PEFT
   models), falling back to ``base_model``;
2. the blocks of that stack: the first of the attributes ``layers``, ``h``, ``block``, ``blocks``, ``layer``
   (also one level down, e.g. ``decoder.layers``) that is a ``ModuleList``; failing that, the first
   ``ModuleList`` anywhere in the stack whose length equals the configured number of layers;
3. the final norm the stack applies after its last block (``norm``, ``ln_f``, ``final_layer_norm``,
   ``final_layernorm``), or ``None`` — used only by tests and docs to relate our last layer to HF's.

Calling the stack itself (not the ``...ForCausalLM`` wrapper) is what skips the LM head: no logits are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taskscope.models.capabilities import cache_keyword

BLOCK_ATTRIBUTES = ("layers", "h", "block", "blocks", "layer")
FINAL_NORM_ATTRIBUTES = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


@dataclass(frozen=True)
class Backbone:
    """The module to call (`stack`), its blocks in order, its final norm and whether it is a T5-style encoder."""

    stack: nn.Module
    blocks: nn.ModuleList
    final_norm: nn.Module | None
    is_encoder: bool

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def takes_cache(self) -> bool:
        """Whether the stack is causal and continues a KV cache (needed to reuse a shared prefix); found by
        trying it once (`taskscope.models.capabilities.cache_keyword`)."""
        return not self.is_encoder and cache_keyword(self.stack) is not None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: Any = None) -> Any:
        """Run the stack on one padded batch.  Without ``cache``, no KV cache is made; with one, the batch
        continues it (``attention_mask`` then covers cache + batch) and the new keys and values are appended."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        if cache is not None:
            kwargs.update({cache_keyword(self.stack): cache, "use_cache": True})
        return self.stack(**kwargs)


def _configured_layers(model: nn.Module, is_encoder: bool) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    names = ("num_layers", "num_hidden_layers", "n_layer") if is_encoder else (
        "num_hidden_layers", "n_layer", "num_layers")
    for name in names:
        value = getattr(text, name, None)
        if isinstance(value, int):
            return value
    return None


def _find_blocks(stack: nn.Module, expected: int | None) -> nn.ModuleList | None:
    for owner in (stack, *(getattr(stack, name, None) for name in ("decoder", "encoder", "model"))):
        if owner is None:
            continue
        for name in BLOCK_ATTRIBUTES:
            candidate = getattr(owner, name, None)
            if isinstance(candidate, nn.ModuleList) and len(candidate) > 0:
                return candidate
    if expected is not None:
        for module in stack.modules():
            if isinstance(module, nn.ModuleList) and len(module) == expected:
                return module
    return None


def _find_final_norm(stack: nn.Module) -> nn.Module | None:
    for name in FINAL_NORM_ATTRIBUTES:
        module = getattr(stack, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def find_backbone(model: nn.Module) -> Backbone:
    """Return the `Backbone` of ``model`` (see the module docstring for the lookup order).

    Raises ``ValueError`` naming the model class when no block list can be found.
    """
    config = getattr(model, "config", None)
    is_encoder = bool(getattr(config, "is_encoder_decoder", False))
    if is_encoder:
        stack = model.get_encoder()
    elif hasattr(model, "get_decoder"):
        stack = model.get_decoder()
    else:
        stack = getattr(model, "base_model", model)
    blocks = _find_blocks(stack, _configured_layers(model, is_encoder))
    if blocks is None:
        raise ValueError(
            f"cannot find the transformer blocks of {type(model).__name__} (looked in {type(stack).__name__} for "
            f"a ModuleList named {', '.join(BLOCK_ATTRIBUTES)} or of the configured number of layers)"
        )
    return Backbone(stack=stack, blocks=blocks, final_norm=_find_final_norm(stack), is_encoder=is_encoder)
