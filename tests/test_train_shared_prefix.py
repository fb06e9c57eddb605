"""Shared-prefix training: the prefix runs once per micro-batch with gradients, and loss and gradients equal
those of the unshared batch (Llama, Gemma 3 past its sliding window, GPT-2, LoRA); T5 and batches with
nothing to share fall back, and the fallback is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskscope.common.fastpaths import collect_fast_paths
from taskscope.models import add_lora, tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train import TrainConfig, train
from taskscope.train.data import Item, collate
from taskscope.train.objective import TargetLoss
from taskscope.train.shared_prefix import collate_unit, split_microbatch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def items_with_prefix(prefix_length: int, seed: int = 0) -> list[Item]:
    """Five sequences: one shared random prefix, tails and targets of different lengths (so rows pad)."""
    g = torch.Generator().manual_seed(seed)
    prefix = tuple(torch.randint(4, 260, (prefix_length,), generator=g).tolist())
    out = []
    for i, (tail, target) in enumerate([(3, 4), (9, 2), (1, 6), (5, 5), (12, 1)]):
        tail_ids = tuple(torch.randint(4, 260, (tail,), generator=g).tolist())
        target_ids = tuple(torch.randint(4, 260, (target,), generator=g).tolist()) + (2,)
        out.append(Item(task_index=i % 2, prompt_ids=prefix + tail_ids, target_ids=target_ids))
    return out


def loss_and_grads(model, batches: list[dict[str, torch.Tensor]], n_targets: int):
    """Summed target loss over ``batches`` divided by ``n_targets`` (as the loop does) and every gradient."""
    model.zero_grad(set_to_none=True)
    module = TargetLoss(model)
    total = torch.zeros((), dtype=torch.float64)
    all_losses = []
    for batch in batches:
        token_losses, _ = module(**batch)
        (token_losses.sum() / n_targets).backward()
        total += token_losses.detach().double().sum()
        all_losses.append(token_losses.detach())
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return float(total / n_targets), torch.sort(torch.cat(all_losses)).values, grads


def shared_and_unshared(model, items: list[Item], min_shared_tokens: int = 8):
    unshared = collate(items, pad_id=0, is_encoder_decoder=False)
    unshared.pop("task_index")
    n_targets = sum(len(item.target_ids) for item in items)
    units = split_microbatch(items, min_shared_tokens=min_shared_tokens, enabled=True)
    shared = []
    for unit in units:
        batch = collate_unit(unit, pad_id=0, is_encoder_decoder=False, decoder_start_id=None)
        batch.pop("task_index")
        shared.append(batch)
    return units, loss_and_grads(model, [unshared], n_targets), loss_and_grads(model, shared, n_targets)


@pytest.mark.parametrize("arch,prefix_length,lora", [
    ("llama", 20, False), ("gpt2", 20, False), ("gemma", 20, False),
    ("gemma", 45, False),   # tiny Gemma's sliding window is 32: tails attend past it
    ("llama", 20, True),
])
def test_shared_prefix_gives_the_unshared_loss_and_gradients(arch: str, prefix_length: int, lora: bool) -> None:
    loaded = tiny_model(arch, n_layers=2, seed=3)
    model = loaded.model
    if lora:
        model = add_lora(model, r=4, alpha=8, dropout=0.0)
        for name, p in model.named_parameters():  # non-zero B so the adapters change the forward pass
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.05)
    else:
        model.requires_grad_(True)
    model.train()
    items = items_with_prefix(prefix_length)
    units, (loss_u, tokens_u, grads_u), (loss_s, tokens_s, grads_s) = shared_and_unshared(model, items)
    assert len(units) == 1 and len(units[0].prefix_ids) == prefix_length  # every row shares the prefix
    assert abs(loss_u - loss_s) < 1e-5
    torch.testing.assert_close(tokens_s, tokens_u, atol=1e-5, rtol=1e-5)
    assert grads_u.keys() == grads_s.keys() and grads_u
    for name, grad in grads_u.items():
        torch.testing.assert_close(grads_s[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    if not lora:  # the prefix tokens' embedding rows get gradient only through the shared prefix pass
        embedding = model.get_input_embeddings().weight
        prefix_rows = sorted(set(items[0].prompt_ids[:prefix_length]))
        name = next(n for n, p in model.named_parameters() if p is embedding)
        assert grads_s[name][prefix_rows].abs().sum() > 0


def test_a_micro_batch_of_two_tasks_splits_into_one_pass_per_prefix() -> None:
    a, b = items_with_prefix(20, seed=1), items_with_prefix(24, seed=2)
    mixed = [a[0], b[0], a[1], b[1], a[2], Item(0, tuple(range(4, 14)), (5, 2))]
    units = split_microbatch(mixed, min_shared_tokens=8, enabled=True)
    prefixes = sorted(len(unit.prefix_ids) for unit in units if unit.prefix_ids)
    assert prefixes == [20, 24]
    assert sum(len(unit.items) for unit in units) == len(mixed)
    assert [len(unit.items) for unit in units if not unit.prefix_ids] == [1]   # the odd one runs whole
    model = tiny_model("llama", n_layers=2, seed=0).model.requires_grad_(True)
    _, (loss_u, _, grads_u), (loss_s, _, grads_s) = shared_and_unshared(model, mixed)
    assert abs(loss_u - loss_s) < 1e-5
    for name, grad in grads_u.items():
        torch.testing.assert_close(grads_s[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_short_common_prefixes_are_not_shared() -> None:
    items = items_with_prefix(5)
    assert [unit.prefix_ids for unit in split_microbatch(items, min_shared_tokens=8, enabled=True)] == [()]
    assert [unit.prefix_ids for unit in split_microbatch(items_with_prefix(30), min_shared_tokens=8,
                                                         enabled=False)] == [()]


def definition_data(n: int = 8) -> dict[str, list[FormattedExample]]:
    """A task whose prompts share a long definition (as the Tk-Instruct format does), two references each."""
    definition = "Definition: answer with the letter that follows the given one in the alphabet. Input: "
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {"next": [FormattedExample("next", f"n{i}", f"{definition}{letters[i] * (1 + i % 3)} Output:",
                                      (f" {letters[i + 1]}", f" {letters[i + 1]}."), 0) for i in range(n)]}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_training_with_and_without_the_shared_prefix_ends_in_the_same_weights(tmp_path: Path, arch: str) -> None:
    """End to end through the loop (grad accumulation 2, LoRA): sharing the prefix changes nothing but speed."""
    finals = {}
    for share in (True, False):
        loaded = tiny_model(arch, n_layers=2, seed=1)
        config = TrainConfig(lr=1e-2, batch_size=2, grad_accum=2, max_steps=3, schedule="constant",
                             lora={"r": 4, "alpha": 8, "dropout": 0.0}, share_prefix=share, log_every=1, seed=0)
        with collect_fast_paths() as record:
            train(loaded, definition_data(), config, tmp_path / f"{arch}-{share}", progress=False)
        entry = record["train.share_prefix"]
        if share:
            assert entry["used"] == 3 * 2 and not entry["skipped"]
        else:
            assert entry["used"] == 0 and entry["skipped"] == {"switched off (share_prefix=False)": 6}
        finals[share] = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if "lora_" in n}
    assert finals[True].keys() == finals[False].keys() and finals[True]
    for name, tensor in finals[False].items():
        torch.testing.assert_close(finals[True][name], tensor, atol=1e-5, rtol=1e-4, msg=name)


def test_t5_falls_back_and_says_why(tmp_path: Path) -> None:
    loaded = tiny_model("t5", n_layers=1)
    config = TrainConfig(lr=1e-3, batch_size=4, max_steps=1, lora=None, log_every=1)
    with collect_fast_paths() as record:
        train(loaded, definition_data(4), config, tmp_path / "t5", progress=False)
    assert record["train.share_prefix"] == {
        "used": 0, "skipped": {"an encoder-decoder runs whole prompts in its encoder": 1}}
