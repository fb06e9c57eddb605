"""Batched greedy generation that returns only the completions, in input order.

Order of operations of `generate(model, tokenizer, prompts)`:

1. tokenise every prompt (with the tokenizer's special tokens, as training does); a prompt longer than
   ``max_prompt_tokens`` keeps its last tokens (the query);
2. sort the prompts by token length (longest first) and cut them into batches of ``batch_size``;
3. pad each batch: decoder-only models on the **left** (so every prompt ends where generation starts;
   the attention mask marks padding and Hugging Face's ``generate`` derives position ids from it),
   encoder-decoder models (T5) on the right (the encoder is masked, the decoder starts fresh);
4. ``model.generate`` greedily (``do_sample=False``, one beam, the model's own generation config otherwise,
   e.g. its list of eos ids), stopping at eos or after ``max_new_tokens``;
5. keep the new tokens only (decoder-only: everything after the padded prompt width), cut each row at its
   first eos id (dropping the eos and the padding after it), decode without special tokens, and put the
   completions back in input order.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad nor an eos token; set tokenizer.pad_token")


def _is_encoder_decoder(model: Any) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id rows into ``(input_ids, attention_mask)``, on the left or on the right."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        attention_mask[i, span] = 1
    return input_ids, attention_mask


def _eos_ids(config: Any) -> set[int]:
    eos = config.eos_token_id
    return set() if eos is None else {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


def _until_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:position]
    return tokens


def _greedy_config(model: Any, max_new_tokens: int, pad_id: int) -> Any:
    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.num_beams = False, 1
    config.temperature = config.top_p = config.top_k = None
    config.max_new_tokens, config.max_length = max_new_tokens, None
    config.pad_token_id = pad_id
    return config


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Greedy completions of ``prompts`` (prompt stripped), in input order; see the module docstring."""
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
    if not prompts:
        return []
    pad_id = _pad_id(tokenizer)
    encoder_decoder = _is_encoder_decoder(model)
    rows = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    if max_prompt_tokens is not None:
        rows = [row[-max_prompt_tokens:] for row in rows]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    config = _greedy_config(model, max_new_tokens, pad_id)
    eos_ids = _eos_ids(config)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    completions: list[str] = [""] * len(rows)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            input_ids, attention_mask = pad_batch([rows[i] for i in chunk], pad_id, left=not encoder_decoder)
            output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                    generation_config=config)
            new_tokens = output if encoder_decoder else output[:, input_ids.shape[1]:]
            texts = tokenizer.batch_decode([_until_eos(row, eos_ids) for row in new_tokens.tolist()],
                                           skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                completions[i] = text
    finally:
        model.train(was_training)
    return completions
