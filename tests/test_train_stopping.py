"""Stop when learned, bfloat16 autocast, held-out validation and same-task micro-batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.common.fastpaths import collect_fast_paths
from taskscope.models import tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train import TrainConfig, TrainDataError, TrainResult, train, train_control
from taskscope.train.data import Item, group_by_length, hold_out
from taskscope.train.logging import read_log
from taskscope.train.precision import autocast_for
from taskscope.train.stopping import EarlyStopping


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def copy_task(n: int = 32) -> dict[str, list[FormattedExample]]:
    letters = "abcdefghijklmnop"
    return {"copy": [FormattedExample("copy", f"c{i}", f"copy {letters[i % 8]} ->", (f" {letters[i % 8]}",), 0)
                     for i in range(n)]}


def config(**overrides) -> TrainConfig:
    values = {"lr": 1e-2, "batch_size": 4, "max_steps": 40, "lora": None, "log_every": 1, "eval_every": 2,
              "schedule": "constant", "validation_share": 0.25, "seed": 0}
    values.update(overrides)
    return TrainConfig(**values)


def eval_losses(out_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_log(out_dir / "log.jsonl") if r["kind"] == "eval"]


def test_early_stopping_rules() -> None:
    rule = EarlyStopping(target_loss=0.5, patience=2, min_delta=0.1)
    assert [rule.update(s, loss) for s, loss in [(1, 2.0), (2, 1.95), (3, 1.0), (4, 0.95), (5, 0.92)]] == [
        None, None, None, None, "no_improvement"]   # 1.95, 0.95 and 0.92 improve by less than min_delta
    assert (rule.best_loss, rule.best_step, rule.last_loss) == (1.0, 3, 0.92)
    assert EarlyStopping(0.5, None).update(1, 0.5) == "target_reached"


def test_a_control_stops_at_its_target_loss_and_says_so(tmp_path: Path) -> None:
    first_eval = eval_losses_of_a_capped_run(tmp_path)
    target = first_eval[-1][1] * 1.05   # reached late in the capped run, not at its first evaluation
    assert first_eval[0][1] > target
    results = train_control(lambda: tiny_model("llama", seed=0), copy_task(), config(stop_target_loss=target),
                            tmp_path / "controls", progress=False)
    result = results["copy"]
    losses = eval_losses(result.out_dir)
    assert result.stop_reason == "target_reached" and result.steps == losses[-1][0] < 40
    assert result.validation_loss == pytest.approx(losses[-1][1]) and result.validation_loss <= target
    assert all(loss > target for _, loss in losses[:-1])   # it stopped at the first evaluation under the target
    assert result.best_validation_loss == pytest.approx(min(loss for _, loss in losses))
    saved = json.loads((result.final_checkpoint / "result.json").read_text())
    assert saved["stop_reason"] == "target_reached" and saved["steps"] == result.steps
    assert saved["planned_steps"] == 40
    again = train_control(lambda: tiny_model("llama", seed=0), copy_task(), config(stop_target_loss=target),
                          tmp_path / "controls", progress=False)["copy"]
    assert again == result == TrainResult.from_final(result.out_dir)


def eval_losses_of_a_capped_run(tmp_path: Path) -> list[tuple[int, float]]:
    result = train(tiny_model("llama", seed=0), copy_task(), config(), tmp_path / "capped", progress=False)
    assert result.stop_reason == "max_steps" and result.steps == 40
    return eval_losses(result.out_dir)


def test_patience_stops_when_the_validation_loss_stalls(tmp_path: Path) -> None:
    # lr 0: nothing changes, so every evaluation after the first fails to improve
    result = train(tiny_model("llama", seed=0), copy_task(), config(lr=1e-12, stop_patience=3, stop_min_delta=1e-3),
                   tmp_path / "stall", progress=False)
    assert result.stop_reason == "no_improvement" and result.steps == 2 * 4 and result.best_step == 2


def test_epochs_reason_and_no_validation(tmp_path: Path) -> None:
    result = train(tiny_model("llama", seed=0), copy_task(8),
                   TrainConfig(lr=1e-3, batch_size=4, epochs=1, lora=None), tmp_path / "e", progress=False)
    assert (result.stop_reason, result.steps, result.validation_loss) == ("epochs", 2, None)


def test_stopping_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(stop_target_loss=1.0)
    with pytest.raises(ValueError, match="validation"):
        train(tiny_model("llama"), copy_task(), TrainConfig(stop_patience=2, eval_every=1, lora=None), tmp_path / "a")
    with pytest.raises(ValueError, match="not both"):
        train(tiny_model("llama"), copy_task(), config(), tmp_path / "b", validation=copy_task(2))
    with pytest.raises(TrainDataError, match="'copy'"):
        train(tiny_model("llama"), copy_task(1), config(), tmp_path / "c")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=30), st.floats(0.01, 0.9), st.integers(0, 3))
def test_hold_out_splits_each_task_by_instance_not_order(task_of, share, seed):
    data: dict[str, list[FormattedExample]] = {}
    for i, t in enumerate(task_of):
        data.setdefault(f"t{t}", []).append(FormattedExample(f"t{t}", f"i{i}", "p", ("x",), 0))
    if any(len(v) - -(-share * len(v) // 1) < 1 for v in data.values()):
        with pytest.raises(TrainDataError):
            hold_out(data, share, seed)
        return
    train_part, validation = hold_out(data, share, seed)
    reversed_train, reversed_validation = hold_out({t: v[::-1] for t, v in data.items()}, share, seed)
    for task, examples in data.items():
        ids = {ex.instance_id for ex in examples}
        held = {ex.instance_id for ex in validation[task]}
        assert held | {ex.instance_id for ex in train_part[task]} == ids and len(held) >= 1
        assert not held & {ex.instance_id for ex in train_part[task]}
        assert held == {ex.instance_id for ex in reversed_validation[task]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 9)), min_size=1, max_size=40), st.integers(1, 6))
def test_step_micro_batches_prefer_one_task_and_keep_every_item(specs, batch_size):
    items = [Item(task, (5,) * length, (6,)) for task, length in specs]
    batches = group_by_length(items, batch_size)
    assert sorted(map(id, [i for b in batches for i in b])) == sorted(map(id, items))
    assert len(batches) == -(-len(items) // batch_size) and all(len(b) <= batch_size for b in batches)
    counts = {t: sum(1 for t_, _ in specs if t_ == t) for t, _ in specs}
    single_task = sum(1 for b in batches if len(b) == batch_size and len({i.task_index for i in b}) == 1)
    assert single_task >= sum(n // batch_size for n in counts.values())


def test_bf16_autocast_trains_with_float32_master_weights(tmp_path: Path) -> None:
    loaded = tiny_model("llama", seed=0)
    cfg = config(autocast_dtype="bfloat16", lora={"r": 4, "alpha": 8}, max_steps=6, validation_share=0.0,
                 eval_every=0)
    with collect_fast_paths() as record:
        result = train(loaded, copy_task(), cfg, tmp_path / "bf16", progress=False)
    assert record["train.autocast_bf16"] == {"used": 1, "skipped": {}}
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    losses = [r["loss"] for r in read_log(result.log_path) if r["kind"] == "train"]
    assert losses[-1] < losses[0]
    with autocast_for("bfloat16", torch.device("cpu"))():
        assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize("restore_best", [True, False])
def test_restore_best_ends_with_the_weights_of_the_best_evaluation(tmp_path: Path, restore_best: bool) -> None:
    # min_delta 10: no evaluation after the first counts as an improvement, so the best is step 2, the stop step 6
    loaded = tiny_model("llama", seed=0)
    snapshots = {}

    def snapshot(step: int) -> None:
        snapshots[step] = [p.detach().clone() for p in loaded.model.parameters()]

    result = train(loaded, copy_task(), config(stop_patience=2, stop_min_delta=10.0, restore_best=restore_best),
                   tmp_path / "best", progress=False, on_step=snapshot)
    assert (result.stop_reason, result.best_step, result.steps) == ("no_improvement", 2, 6)
    final = list(loaded.model.parameters())
    expected, other = (snapshots[2], snapshots[6]) if restore_best else (snapshots[6], snapshots[2])
    assert all(torch.equal(p, q) for p, q in zip(final, expected))
    assert not all(torch.equal(p, q) for p, q in zip(final, other))
    saved = json.loads((result.final_checkpoint / "result.json").read_text())
    assert saved["weights_step"] == (2 if restore_best else 6)
    with pytest.raises(ValueError, match="restore_best needs eval_every"):
        TrainConfig(restore_best=True)
