"""The training loop: learning, determinism, exact resume (also after SIGKILL), checkpoints, logs, modes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from taskscope.models import ModelSpecError, load_adapter, load_model, tiny_model
from taskscope.models.loaded import fingerprint_after_update
from taskscope.tasks.formats import FormattedExample
from taskscope.train import (
    TrainConfig,
    TrainDataError,
    train,
    train_control,
    train_fewshot,
    train_multitask,
)
from taskscope.train.logging import read_log

SRC = Path(__file__).resolve().parents[1] / "src"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_data(n: int = 12) -> dict[str, list[FormattedExample]]:
    """Two tiny tasks with two references each: copy a letter, or answer its successor."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    copy = [FormattedExample("copy", f"c{i}", f"copy {letters[i]} ->", (f" {letters[i]}", f" {letters[i]}!"), 0)
            for i in range(n)]
    succ = [FormattedExample("next", f"n{i}", f"after {letters[i]} ->", (f" {letters[i + 1]}",), 0) for i in range(n)]
    return {"copy": copy, "next": succ}


def config(**overrides) -> TrainConfig:
    values = {"lr": 3e-3, "batch_size": 4, "grad_accum": 2, "epochs": 3, "lora": None, "log_every": 1, "seed": 7}
    values.update(overrides)
    return TrainConfig(**values)


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        torch.testing.assert_close(tensor, b[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("arch,lora", [("llama", None), ("gpt2", {"r": 4, "alpha": 8}), ("t5", None)])
def test_training_lowers_the_loss_and_is_deterministic(tmp_path: Path, arch: str, lora) -> None:
    cfg = config(lora=lora, lr=3e-2 if lora else 1e-2, epochs=6, warmup_ratio=0.1, checkpoint_every=0)
    runs = []
    for name in ("a", "b"):
        loaded = tiny_model(arch, seed=1)
        result = train(loaded, toy_data(), cfg, tmp_path / name, progress=False)
        runs.append((loaded, read_log(result.log_path)))
    (model_a, log_a), (model_b, log_b) = runs
    assert_same_weights(weights(model_a.model), weights(model_b.model))
    assert log_a == log_b
    losses = [r["loss"] for r in log_a if r["kind"] == "train"]
    assert len(losses) == result.steps == 3 * 6  # 24 examples / (4 * 2) per step, 6 epochs
    # LoRA on a random tiny model learns slowly: the bar is lower, but the loss must still fall
    assert sum(losses[-3:]) < (0.95 if lora else 0.7) * sum(losses[:3])
    assert {"copy", "next"} <= set(log_a[-1]["task_loss"])


def test_lora_run_writes_loadable_adapter_checkpoints(tmp_path: Path) -> None:
    loaded = tiny_model("llama", seed=2)
    base = weights(loaded.model)
    cfg = config(lora={"r": 4, "alpha": 8, "dropout": 0.1}, checkpoint_every=3, epochs=2)
    result = train(loaded, toy_data(), cfg, tmp_path, progress=False)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert steps == ["step-000003"]  # 6 steps: checkpoint at 3, the end is `final`
    ckpt = tmp_path / "checkpoints" / "step-000003"
    assert {"adapter", "optimizer.pt", "rng-rank0.pt", "trainer_state.json"} <= {p.name for p in ckpt.iterdir()}
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    reloaded = load_adapter(tiny_model("llama", seed=2).model, result.final_checkpoint / "adapter")
    for name, tensor in reloaded.state_dict().items():
        if "lora_" in name:
            torch.testing.assert_close(tensor, loaded.model.state_dict()[name], rtol=0, atol=0)
    frozen = {name.replace(".base_layer", ""): p for name, p in loaded.model.get_base_model().named_parameters()
              if "lora_" not in name}
    assert frozen.keys() == base.keys()
    for name, tensor in base.items():  # the base weights stay frozen
        torch.testing.assert_close(frozen[name], tensor, rtol=0, atol=0)
    assert (tmp_path / "tensorboard").is_dir() and list((tmp_path / "tensorboard").iterdir())


@pytest.mark.parametrize("sampler", [None, "dwa"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path: Path, sampler) -> None:
    cfg = config(lora={"r": 4, "alpha": 8, "dropout": 0.2}, checkpoint_every=2, epochs=4, sampler=sampler,
                 sampler_kwargs={"window": 2} if sampler else {})
    full = tiny_model("llama", seed=5)
    train(full, toy_data(), cfg, tmp_path / "full", progress=False)

    def crash(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    interrupted = tiny_model("llama", seed=5)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, toy_data(), cfg, tmp_path / "resumed", progress=False, on_step=crash)
    resumed = tiny_model("llama", seed=5)
    train(resumed, toy_data(), cfg, tmp_path / "resumed", progress=False)
    assert_same_weights(weights(full.model), weights(resumed.model))
    log_full, log_resumed = read_log(tmp_path / "full" / "log.jsonl"), read_log(tmp_path / "resumed" / "log.jsonl")
    assert [r["step"] for r in log_resumed] == [r["step"] for r in log_full]
    assert [r["loss"] for r in log_resumed] == [r["loss"] for r in log_full]


def kill_config() -> TrainConfig:
    """The config of the SIGKILL test, shared with its subprocess script."""
    return config(lora={"r": 4, "alpha": 8, "dropout": 0.2}, checkpoint_every=2, epochs=3, sampler="temperature",
                  sampler_kwargs={"temperature": 2.0})


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {src!r})
    sys.path.insert(0, {tests!r})
    from test_train_loop import kill_config, toy_data
    from taskscope.models import tiny_model
    from taskscope.train import train
    train(tiny_model("llama", seed=9), toy_data(), kill_config(), sys.argv[1], progress=False,
          on_step=lambda step: time.sleep(0.3))
""")


def test_sigkill_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    """A subprocess is killed with SIGKILL after its first checkpoint; resuming here matches a clean run."""
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(src=str(SRC), tests=str(Path(__file__).parent)))
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(script), str(killed_dir)],
                               env={**os.environ, "PYTHONPATH": str(SRC)})
    deadline = time.monotonic() + 120
    while not (killed_dir / "checkpoints" / "step-000002").is_dir():
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed_dir / "final").exists()
    resumed, full = tiny_model("llama", seed=9), tiny_model("llama", seed=9)
    train(resumed, toy_data(), kill_config(), killed_dir, progress=False)
    train(full, toy_data(), kill_config(), tmp_path / "full", progress=False)
    assert_same_weights(weights(resumed.model), weights(full.model))
    saved = load_file(killed_dir / "final" / "adapter" / "adapter_model.safetensors")
    assert saved.keys() and all(torch.equal(t, load_file(tmp_path / "full" / "final" / "adapter" /
                                                         "adapter_model.safetensors")[k]) for k, t in saved.items())
    assert [r["step"] for r in read_log(killed_dir / "log.jsonl")] == list(range(1, 10))


def test_multitask_logs_sampler_probabilities_and_validation_loss(tmp_path: Path) -> None:
    data = toy_data()
    validation = {task: examples[:3] for task, examples in toy_data(15).items()}
    cfg = config(sampler="reverse_annealing", sampler_kwargs={"max_temperature": 100.0}, eval_every=3,
                 unsupervised_every=3, max_steps=9, cap=6)
    result = train_multitask(tiny_model("gpt2"), {"copy": data["copy"], "next": data["next"][:3]}, cfg, tmp_path,
                             validation=validation, text_source=["some plain text for the LM loss"] * 4, progress=False)
    log = read_log(result.log_path)
    train_records = [r for r in log if r["kind"] == "train"]
    p_first, p_last = train_records[0]["p"], train_records[-1]["p"]
    assert sum(p_first.values()) == pytest.approx(1.0)
    assert p_first["copy"] == pytest.approx(6 / 9)  # capped proportional at T = 1
    assert p_last["copy"] < p_first["copy"]  # the temperature rises towards uniform
    assert [r["step"] for r in train_records if "unsupervised" in r["task_loss"]] == [3, 6, 9, 12]
    evals = [r for r in log if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6, 9, 12, 13] and set(evals[0]["task_loss"]) == {"copy", "next"}


def test_control_trains_each_task_and_skips_finished_ones(tmp_path: Path) -> None:
    built = []

    def factory():
        built.append(1)
        return tiny_model("llama", seed=0)

    cfg = config(epochs=1)
    first = train_control(factory, toy_data(4), cfg, tmp_path, progress=False)
    assert set(first) == {"copy", "next"} and len(built) == 2
    stamp = (tmp_path / "copy" / "final" / "result.json").stat().st_mtime_ns
    second = train_control(factory, toy_data(4), cfg, tmp_path, progress=False)
    assert len(built) == 2 and second["copy"].steps == first["copy"].steps
    assert (tmp_path / "copy" / "final" / "result.json").stat().st_mtime_ns == stamp


def test_fewshot_zero_shots_returns_the_base_and_k_shots_train_lora(tmp_path: Path) -> None:
    loaded = tiny_model("llama")
    fingerprint = loaded.fingerprint
    assert train_fewshot(loaded, [], TrainConfig(), tmp_path / "zero") is loaded
    assert loaded.fingerprint == fingerprint and not (tmp_path / "zero").exists()
    shots = toy_data(8)["copy"]
    tuned = train_fewshot(loaded, shots, TrainConfig(epochs=2, batch_size=4), tmp_path / "eight")
    assert hasattr(tuned.model, "peft_config") and tuned.fingerprint != fingerprint
    with pytest.raises(TrainDataError, match="one task"):
        train_fewshot(tiny_model("llama"), shots + toy_data(2)["next"], TrainConfig(), tmp_path / "mixed")


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    data = toy_data(3)
    with pytest.raises(TrainDataError, match="'next'"):
        train_multitask(tiny_model("llama"), {"copy": data["copy"], "next": []}, config(), tmp_path / "a")
    with pytest.raises(TrainDataError, match="'next'"):
        train_control(lambda: tiny_model("llama"), {"copy": data["copy"], "next": []}, config(), tmp_path / "b")
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        train(tiny_model("llama"), data, config(sampler="nope"), tmp_path / "c", progress=False)
    with pytest.raises(TrainDataError, match="task 'copy', instance 'c0'.*max_length"):
        train(tiny_model("llama"), data, config(max_length=8, max_target_length=4, truncation="fail"),
              tmp_path / "d", progress=False)
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="extra"):
        TrainConfig(learning_rate=1e-3)


def test_tokenizer_without_pad_token_trains(tmp_path: Path) -> None:
    loaded = tiny_model("llama")
    loaded.tokenizer.pad_token = None
    result = train(loaded, toy_data(4), config(epochs=1), tmp_path, progress=False)
    assert result.steps == 1


def test_t5_mixes_span_corruption_steps(tmp_path: Path) -> None:
    cfg = config(max_steps=4, unsupervised_every=2)
    result = train(tiny_model("t5"), toy_data(4), cfg, tmp_path, text_source=["one two three four five six"] * 3,
                   progress=False)
    unsupervised_steps = [r["step"] for r in read_log(result.log_path) if "unsupervised" in r["task_loss"]]
    assert unsupervised_steps == [2, 4, 6, 8]  # added to the 4 supervised steps (issue 16)


def test_resume_with_a_changed_config_is_refused(tmp_path: Path) -> None:
    def stop(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model("llama"), toy_data(), config(checkpoint_every=1), tmp_path, progress=False, on_step=stop)
    with pytest.raises(ValueError, match="config fields changed.*lr"):
        train(tiny_model("llama"), toy_data(), config(checkpoint_every=1, lr=0.5), tmp_path, progress=False)


@pytest.mark.parametrize("lora", [{"r": 4, "alpha": 8}, None])
def test_trained_fingerprint_names_the_weights_and_a_reload_gives_it_back(tmp_path: Path, lora) -> None:
    cfg = config(lora=lora, epochs=1)
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        loaded = tiny_model("llama", seed=1)
        base = loaded.fingerprint
        train(loaded, toy_data(4), cfg.model_copy(update={"seed": seed}), tmp_path / name, progress=False)
        assert loaded.fingerprint != base
        runs[name] = loaded
    assert runs["a"].fingerprint == runs["b"].fingerprint != runs["c"].fingerprint
    reloaded = tiny_model("llama", seed=1)
    train(reloaded, toy_data(4), cfg, tmp_path / "a", progress=False)   # finished: its weights are loaded
    assert_same_weights(weights(reloaded.model), weights(runs["a"].model))
    assert reloaded.fingerprint == runs["a"].fingerprint
    names = [name for name, p in reloaded.model.named_parameters() if p.requires_grad]
    base = tiny_model("llama", seed=1).fingerprint                     # the chain: base, then trained weights
    assert fingerprint_after_update(base, reloaded.model, names) == runs["a"].fingerprint
    with torch.no_grad():                                              # any trained weight changed changes it
        next(p for p in reloaded.model.parameters() if p.requires_grad).add_(1e-3)
    assert fingerprint_after_update(base, reloaded.model, names) != runs["a"].fingerprint


def test_the_loops_adamw_updates_equal_torchs_default_adamw() -> None:
    """The loop's multi-tensor AdamW (``foreach=True``) gives bitwise the updates of the per-tensor default."""
    from taskscope.models import add_lora
    from taskscope.train.loop import _optimizer_and_scheduler

    def lora_model():
        torch.manual_seed(0)   # the same initial adapters
        return add_lora(tiny_model("llama", seed=3).model, r=4, alpha=8, dropout=0.0)

    models = [lora_model(), lora_model()]
    assert_same_weights(weights(models[0]), weights(models[1]))
    ours, _ = _optimizer_and_scheduler(models[0], config(lr=1e-2, weight_decay=0.1), steps=3)
    trainable = [p for p in models[1].parameters() if p.requires_grad]
    default = torch.optim.AdamW([{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": 0.1},
                                 {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}], lr=1e-2)
    ids = torch.arange(3, 19).reshape(2, 8)
    for _ in range(3):
        for model, optimizer in zip(models, (ours, default)):
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert_same_weights(weights(models[0]), weights(models[1]))
