"""Target-only logits give the same loss as full logits computed independently in float64."""

from __future__ import annotations

import pytest
import torch

from taskscope.models import add_lora, tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train.data import IGNORE_INDEX, collate, encode_tasks, fit_lengths
from taskscope.train.objective import TargetLoss


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(loaded):
    examples = [FormattedExample("t", f"i{i}", "question " * (i + 1), (f"answer {i}",), 0) for i in range(4)]
    encoded = encode_tasks(loaded.tokenizer, {"t": examples})["t"]
    items = [fit_lengths(ex, ex.target_ids[0], task_index=0, max_length=128, max_target_length=16,
                         truncation="fail", is_encoder_decoder=loaded.is_encoder_decoder) for ex in encoded]
    batch = collate(items, pad_id=loaded.tokenizer.pad_token_id, is_encoder_decoder=loaded.is_encoder_decoder,
                    decoder_start_id=getattr(loaded.model.config, "decoder_start_token_id", None))
    batch.pop("task_index")
    return batch


def _reference_token_losses(model, batch):
    """Full-vocabulary logits from the model's own forward, log-softmax in float64, gather at the targets."""
    with torch.no_grad():
        if "decoder_input_ids" in batch:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            labels = batch["labels"]
        else:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return -log_probs[mask].gather(1, labels[mask][:, None])[:, 0]


@pytest.mark.parametrize("arch", ["llama", "gemma", "gpt2", "t5"])
@pytest.mark.parametrize("lora", [False, True])
def test_target_loss_matches_full_logits(arch: str, lora: bool) -> None:
    loaded = tiny_model(arch, seed=3)
    if arch == "gemma":
        loaded.model.config.final_logit_softcapping = 2.0  # small, so the softcap changes the logits a lot
    model = add_lora(loaded.model, r=4, alpha=8, dropout=0.0) if lora else loaded.model
    if lora:  # non-zero B so the adapters matter
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(0))
    batch = _batch(loaded)
    module = TargetLoss(model).eval()
    with torch.no_grad():
        ours, rows = module(**batch)
    reference = _reference_token_losses(model, batch)
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5)
    labels = batch["labels"] if arch == "t5" else batch["labels"][:, 1:]
    assert rows.tolist() == (labels != IGNORE_INDEX).nonzero()[:, 0].tolist()


def test_gemma_softcap_is_applied() -> None:
    loaded = tiny_model("gemma", seed=1)
    batch = _batch(loaded)
    loaded.model.config.final_logit_softcapping = None
    uncapped, _ = TargetLoss(loaded.model)(**batch)
    loaded.model.config.final_logit_softcapping = 0.5
    capped, _ = TargetLoss(loaded.model)(**batch)
    assert not torch.allclose(uncapped, capped)
    # with |logits| <= 0.5 the loss is close to log(V) for every token
    assert torch.allclose(capped, torch.full_like(capped, float(torch.log(torch.tensor(260.0)))), atol=1.0)
