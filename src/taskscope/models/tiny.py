"""Tiny randomly initialised models with an in-process byte-level tokenizer, for tests and examples.

`tiny_model` builds, in this order:

1. the tokenizer: byte-level BPE with no merges (one token per UTF-8 byte, so any text round-trips) plus the
   special tokens ``<pad>`` (id 0), ``<bos>`` (1), ``<eos>`` (2), ``<unk>`` (3); pad differs from eos;
2. the config of the requested architecture (dropout off, so training steps are deterministic);
3. the model, initialised under ``torch.manual_seed(seed)`` inside a forked RNG (the caller's global RNG state
   is left untouched), so equal arguments give bitwise-equal weights;
4. the `LoadedModel` record, with the fingerprint computed from the weights.

Nothing is downloaded.  Forward and backward passes take milliseconds on a CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from .loaded import LoadedModel, fingerprint_from_weights, model_dimensions

TINY_ARCHS = ("llama", "gemma", "gpt2", "t5")
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
MAX_POSITIONS = 512
NUM_HEADS = 4


def byte_tokenizer(model_max_length: int = MAX_POSITIONS) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: 4 special tokens (ids 0-3) then one token per byte value (ids 4-259).

    Padding is on the right (``padding_side="right"``); code that needs left padding sets it itself.
    """
    specials = list(SPECIAL_TOKENS.values())
    byte_symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(specials + byte_symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=model_max_length, padding_side="right", **SPECIAL_TOKENS
    )
    return tokenizer


def _config(arch: str, n_layers: int, hidden_size: int, vocab_size: int, tokenizer: Any) -> Any:
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    head_dim = hidden_size // NUM_HEADS
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
            num_hidden_layers=n_layers, num_attention_heads=NUM_HEADS, num_key_value_heads=NUM_HEADS // 2,
            max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False, **ids,
        )
    if arch == "gemma":
        return Gemma3TextConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
            num_hidden_layers=n_layers, num_attention_heads=NUM_HEADS, num_key_value_heads=NUM_HEADS // 2,
            head_dim=head_dim, max_position_embeddings=MAX_POSITIONS, sliding_window=32,
            tie_word_embeddings=True, **ids,
        )
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=hidden_size, n_layer=n_layers, n_head=NUM_HEADS,
            n_positions=MAX_POSITIONS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids,
        )
    if arch == "t5":
        return T5Config(
            vocab_size=vocab_size, d_model=hidden_size, d_kv=head_dim, d_ff=2 * hidden_size,
            num_layers=n_layers, num_decoder_layers=n_layers, num_heads=NUM_HEADS, dropout_rate=0.0,
            decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")


_MODEL_CLASSES = {
    "llama": LlamaForCausalLM,
    "gemma": Gemma3ForCausalLM,
    "gpt2": GPT2LMHeadModel,
    "t5": T5ForConditionalGeneration,
}


def tiny_model(
    arch: str = "llama",
    n_layers: int = 2,
    hidden_size: int = 64,
    vocab_size: int | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Build a randomly initialised `arch` model with `n_layers` blocks of width `hidden_size`.

    `vocab_size` defaults to the tokenizer's size (260) and may only be larger.  `hidden_size` must be a
    multiple of 4 (the number of attention heads).  The model is returned in eval mode, float32, on CPU.
    """
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")
    if n_layers < 1:
        raise ValueError(f"tiny:{arch}: n_layers must be >= 1, got {n_layers}")
    if hidden_size < NUM_HEADS or hidden_size % NUM_HEADS:
        raise ValueError(f"tiny:{arch}: hidden_size must be a positive multiple of {NUM_HEADS}, got {hidden_size}")
    tokenizer = byte_tokenizer()
    if vocab_size is None:
        vocab_size = len(tokenizer)
    if vocab_size < len(tokenizer):
        raise ValueError(f"tiny:{arch}: vocab_size {vocab_size} is smaller than the tokenizer ({len(tokenizer)})")
    config = _config(arch, n_layers, hidden_size, vocab_size, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _MODEL_CLASSES[arch](config).to(torch.float32).eval()
    num_layers, width = model_dimensions(config)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=f"tiny:{arch}:{n_layers}",
        is_encoder_decoder=bool(config.is_encoder_decoder),
        num_layers=num_layers,
        hidden_size=width,
        fingerprint=fingerprint_from_weights(model),
    )
