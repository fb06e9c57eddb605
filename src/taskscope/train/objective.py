"""The training objective: cross-entropy on target tokens, with logits computed at target positions only.

`TargetLoss` wraps a Hugging Face model (plain or PEFT) in one `torch.nn.Module`, so `accelerate` can wrap it
for DDP/FSDP.  Its forward pass, in order:

* causal LM: run the backbone (the model without its LM head: ``base_model``, e.g. ``model.model`` for
  Llama/Gemma, ``model.transformer`` for GPT-2) to get the final hidden states ``(B, T, d)``; select the
  positions ``p`` whose next token ``p + 1`` is a target; apply the LM head to those ``N`` rows only
  ``(N, V)``; apply ``final_logit_softcapping`` when the config sets it (Gemma); cross-entropy against the
  next tokens.
  With ``prefix_ids`` (a prefix shared by every row, `shared_prefix`) the backbone first runs that one row
  into a ``DynamicCache`` (gradients on), the cache is repeated over the rows, and the rows' tails continue it.
* encoder-decoder (T5): run encoder and decoder, scale the decoder output by ``d_model ** -0.5`` when the
  model does (tied embeddings), select the non-padding decoder positions, LM head on those only.

It returns the per-token losses ``(N,)`` and the batch row of each token, so the loop can normalise over
the whole optimizer step and split losses by task.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from taskscope.models.capabilities import cache_kwargs

from .data import IGNORE_INDEX


def unwrap_peft(model: Any) -> Any:
    """The Hugging Face model inside a PEFT wrapper (LoRA layers stay injected), or ``model`` itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class TargetLoss(nn.Module):
    """Per-token target losses of ``model`` (see the module docstring for the order of operations)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        hf = unwrap_peft(model)
        self.is_encoder_decoder = bool(getattr(hf.config, "is_encoder_decoder", False))
        text_config = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
        self.softcap = getattr(text_config, "final_logit_softcapping", None)
        if not self.is_encoder_decoder and hf.base_model is hf:
            raise TypeError(f"{type(hf).__name__} has no separate backbone (base_model); cannot skip its LM head")
        self.decoder_scale = None
        if self.is_encoder_decoder and getattr(hf.config, "scale_decoder_outputs", hf.config.tie_word_embeddings):
            self.decoder_scale = hf.config.d_model ** -0.5

    def _hf(self) -> Any:
        return unwrap_peft(self.model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        prefix_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cache`` (causal LMs): a KV cache the batch continues; ``attention_mask`` then covers cache + batch
        while ``input_ids``/``labels`` hold the new positions only (the keyword the backbone takes for it is
        found by `taskscope.models.capabilities.cache_kwargs`).  ``prefix_ids`` ``(1, P)``: a prefix every row
        shares, run here (with gradients) into a fresh cache that is repeated over the rows and continued;
        ``attention_mask`` then covers prefix + batch (`shared_prefix`)."""
        hf = self._hf()
        if prefix_ids is not None:
            if cache is not None:
                raise ValueError("give either cache or prefix_ids, not both")
            cache = self._prefix_cache(hf.base_model, prefix_ids, rows=input_ids.shape[0])
        if self.is_encoder_decoder:
            encoded = hf.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            hidden = hf.get_decoder()(
                input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                encoder_hidden_states=encoded, encoder_attention_mask=attention_mask, use_cache=False,
            ).last_hidden_state
            if self.decoder_scale is not None:
                hidden = hidden * self.decoder_scale
            targets = labels
        else:
            extra = cache_kwargs(hf.base_model, cache) if cache is not None else {"use_cache": False}
            hidden = hf.base_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            hidden = hidden[:, :-1]
            targets = labels[:, 1:]
        mask = targets != IGNORE_INDEX
        logits = hf.get_output_embeddings()(hidden[mask])
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        token_losses = F.cross_entropy(logits.float(), targets[mask], reduction="none")
        rows = mask.nonzero()[:, 0]
        return token_losses, rows

    @staticmethod
    def _prefix_cache(backbone: Any, prefix_ids: torch.Tensor, rows: int) -> DynamicCache:
        """The KV cache of one prefix row, repeated over ``rows`` (out-of-place, so autograd flows through it)."""
        cache = DynamicCache()
        backbone(input_ids=prefix_ids, attention_mask=torch.ones_like(prefix_ids), **cache_kwargs(backbone, cache))
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache
