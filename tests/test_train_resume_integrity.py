"""Resume from damaged checkpoints and logs: fall back to the newest intact checkpoint, never log a step twice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from taskscope.models import tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train import TrainConfig, train
from taskscope.train.checkpoint import FILES, checkpoint_problems, latest_checkpoint
from taskscope.train.logging import read_log


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_data(n: int = 8) -> dict[str, list[FormattedExample]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {"copy": [FormattedExample("copy", f"c{i}", f"copy {letters[i]} ->", (f" {letters[i]}",), 0)
                     for i in range(n)]}


def config(**overrides) -> TrainConfig:
    values = {"lr": 1e-2, "batch_size": 2, "grad_accum": 1, "epochs": 2, "lora": {"r": 2, "alpha": 4, "dropout": 0.0},
              "log_every": 1, "seed": 3, "checkpoint_every": 2}
    values.update(overrides)
    return TrainConfig(**values)


def crash_at(step_to_crash: int):
    def on_step(step: int) -> None:
        if step == step_to_crash:
            raise KeyboardInterrupt(f"killed after step {step}")
    return on_step


def lora_weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, caplog) -> None:
    cfg = config()  # 8 examples / batch 2 = 4 steps per epoch, 8 steps; checkpoints at 2, 4, 6
    full = tiny_model("llama", seed=4)
    train(full, toy_data(), cfg, tmp_path / "full", progress=False)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model("llama", seed=4), toy_data(), cfg, out, progress=False, on_step=crash_at(5))
    newest = out / "checkpoints" / "step-000004"
    assert latest_checkpoint(out) == newest and (newest / FILES).is_file()
    adapter = newest / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[: adapter.stat().st_size // 2])  # a disk that lost the tail
    assert checkpoint_problems(newest) == ["adapter/adapter_model.safetensors: sha256 differs (changed or truncated)"]

    with caplog.at_level(logging.WARNING, logger="taskscope.train"):
        assert latest_checkpoint(out) == out / "checkpoints" / "step-000002"
        resumed = tiny_model("llama", seed=4)
        train(resumed, toy_data(), cfg, out, progress=False)
    skipped = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert skipped and all("step-000004" in m and "adapter_model.safetensors" in m for m in skipped)
    # resuming from step 2 is exact: the same weights and the same log as a run never interrupted
    full_weights, resumed_weights = lora_weights(full.model), lora_weights(resumed.model)
    assert full_weights.keys() == resumed_weights.keys() and full_weights
    for name, tensor in full_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=0, msg=name)
    log_full, log_resumed = read_log(tmp_path / "full" / "log.jsonl"), read_log(out / "log.jsonl")
    assert [(r["kind"], r["step"], r["loss"]) for r in log_resumed] == [(r["kind"], r["step"], r["loss"]) for r in log_full]
    assert checkpoint_problems(newest) == []  # step 4 was written again on the way


def test_a_run_killed_before_its_first_checkpoint_does_not_log_steps_twice(tmp_path: Path) -> None:
    cfg = config(checkpoint_every=0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model("llama", seed=4), toy_data(), cfg, tmp_path, progress=False, on_step=crash_at(3))
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl") if r["kind"] == "train"] == [1, 2, 3]
    train(tiny_model("llama", seed=4), toy_data(), cfg, tmp_path, progress=False)
    steps = [r["step"] for r in read_log(tmp_path / "log.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 9))


def test_every_checkpoint_damaged_starts_over(tmp_path: Path, caplog) -> None:
    cfg = config()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model("llama", seed=4), toy_data(), cfg, tmp_path, progress=False, on_step=crash_at(3))
    state = tmp_path / "checkpoints" / "step-000002" / "optimizer.pt"
    state.write_bytes(b"\0" * state.stat().st_size)  # same size, other bytes
    with caplog.at_level(logging.WARNING, logger="taskscope.train"):
        assert latest_checkpoint(tmp_path) is None
    assert any("optimizer.pt" in r.getMessage() for r in caplog.records)


def test_damaged_final_weights_are_trained_again_from_the_newest_checkpoint(tmp_path: Path, caplog) -> None:
    cfg = config()
    first = tiny_model("llama", seed=4)
    train(first, toy_data(), cfg, tmp_path, progress=False)
    expected = lora_weights(first.model)
    weights = tmp_path / "final" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="taskscope.train"):
        again = tiny_model("llama", seed=4)
        train(again, toy_data(), cfg, tmp_path, progress=False)
    assert any("final weights" in r.getMessage() and "adapter_model.safetensors" in r.getMessage() for r in caplog.records)
    for name, tensor in expected.items():
        torch.testing.assert_close(lora_weights(again.model)[name], tensor, rtol=0, atol=0, msg=name)
    assert checkpoint_problems(tmp_path / "final") == []
    steps = [r["step"] for r in read_log(tmp_path / "log.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 9))
