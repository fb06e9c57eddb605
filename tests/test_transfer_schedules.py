"""The paper's schedules (issue 16): constant few-shot lr, fixed warm-up, unsupervised steps added on top of the
instruction-tuning steps, and a per-task data limit that limits the data (not only the sampling rate)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskscope.models import tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train import TrainConfig, train
from taskscope.train.data import EncodedExample
from taskscope.train.logging import read_log
from taskscope.train.plan import ItemMaker, SamplerPlan, limit_data, total_steps, warmup_count
from taskscope.train.samplers import make_sampler


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy(n: int = 8) -> dict[str, list[FormattedExample]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {"copy": [FormattedExample("copy", f"c{i}", f"copy {letters[i]} ->", (f" {letters[i]}",), 0)
                     for i in range(n)]}


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("supervised", [1, 4, 9, 12, 13])
def test_unsupervised_steps_are_added_so_the_it_step_count_is_unchanged(k: int, supervised: int) -> None:
    for config, steps_per_epoch in ((TrainConfig(max_steps=supervised, unsupervised_every=k), 7),
                                    (TrainConfig(epochs=1.0, unsupervised_every=k), supervised)):
        total = total_steps(config, steps_per_epoch)
        it_steps = sum(1 for step in range(total) if (step + 1) % k)
        assert it_steps == supervised, (config.max_steps, k)
        assert total_steps(config.model_copy(update={"unsupervised_every": 0}), steps_per_epoch) == supervised


def test_mixing_keeps_the_instruction_tuning_steps_in_a_real_run(tmp_path: Path) -> None:
    """12 steps with an unsupervised step every 3: 12 IT steps + 6 unsupervised (was 9 IT + 3)."""
    config = TrainConfig(max_steps=12, unsupervised_every=3, batch_size=4, lora=None, lr=1e-3, log_every=1)
    result = train(tiny_model("llama", n_layers=1, hidden_size=32, seed=0), toy(), config, tmp_path,
                   text_source=["one two three four five"] * 4, progress=False)
    records = read_log(result.log_path)
    unsupervised = [r["step"] for r in records if "unsupervised" in r["task_loss"]]
    supervised = [r["step"] for r in records if "copy" in r["task_loss"]]
    assert result.steps == 18 and len(supervised) == 12 and unsupervised == [3, 6, 9, 12, 15, 18]


def test_fixed_warmup_steps_and_the_constant_fewshot_schedule(tmp_path: Path) -> None:
    assert warmup_count(TrainConfig(warmup_steps=500, warmup_ratio=0.5), 10_000) == 500
    assert warmup_count(TrainConfig(warmup_ratio=0.1), 95) == 10
    config = TrainConfig(max_steps=6, warmup_steps=2, schedule="linear", batch_size=4, lora=None, lr=1e-2, log_every=1)
    result = train(tiny_model("llama", n_layers=1, hidden_size=32, seed=0), toy(), config, tmp_path / "warm",
                   progress=False)
    lrs = [r["lr"] for r in read_log(result.log_path) if r["kind"] == "train"]
    # after step s the scheduler has stepped s times: warm-up 1e-2 * s / 2, then linear decay over 4 steps
    assert lrs[:2] == pytest.approx([5e-3, 1e-2]) and lrs[2] == pytest.approx(1e-2 * 3 / 4)

    from taskscope.studies.transfer.config import TransferConfig

    fewshot = TrainConfig.model_validate(TransferConfig().fewshot.train)
    assert fewshot.schedule == "constant" and fewshot.lr == 1e-3
    assert TrainConfig.model_validate(TransferConfig(fewshot={"train": {"epochs": 1}}).fewshot.train
                                      ).schedule == "constant"
    config = TrainConfig.model_validate({**fewshot.model_dump(), "epochs": 3.0, "batch_size": 2, "log_every": 1,
                                         "lora": {"r": 2, "alpha": 4, "dropout": 0.0}})
    result = train(tiny_model("llama", n_layers=1, hidden_size=32, seed=0), toy(4), config, tmp_path / "fewshot",
                   progress=False)
    lrs = [r["lr"] for r in read_log(result.log_path) if r["kind"] == "train"]
    assert len(lrs) == 6 and lrs == pytest.approx([1e-3] * 6)  # constant, not 1e-3 -> 0


def _encoded(n: int) -> dict[str, list[EncodedExample]]:
    return {"big": [EncodedExample("big", f"b{i}", (i + 3,), ((1, 2),)) for i in range(n)],
            "small": [EncodedExample("small", f"s{i}", (1000 + i,), ((1, 2),)) for i in range(4)]}


def test_data_limit_limits_the_distinct_examples_not_only_the_rate() -> None:
    """A per-task limit of 10 over 3 epochs: the 500-example task contributes at most 10 distinct examples
    (with only the sampler's rate cap it drew from all 500)."""
    make_item = ItemMaker(seed=0, max_length=16, max_target_length=4, truncation="truncate", is_encoder_decoder=False)

    def distinct_big(data) -> int:
        sizes = [len(v) for v in data.values()]
        sampler = make_sampler("proportional", sizes, seed=0, cap=10, task_names=list(data))
        plan = SamplerPlan(data, make_item, sampler, batch_size=4, grad_accum=1, world=1, seed=0)
        steps = 3 * (sum(min(s, 10) for s in sizes) // 4)
        drawn = {item.prompt_ids for step in range(steps) for batch in plan.next_step(step) for item in batch
                 if item.task_index == 0}
        return len(drawn)

    assert distinct_big(_encoded(500)) > 10  # the rate cap alone: fresh examples every pass
    limited = limit_data(_encoded(500), 10, seed=0)
    assert [len(v) for v in limited.values()] == [10, 4]
    assert distinct_big(limited) <= 10
    # nested: the 10 kept examples are among the 50 a larger limit keeps; file order kept
    ids10 = [e.instance_id for e in limited["big"]]
    ids50 = [e.instance_id for e in limit_data(_encoded(500), 50, seed=0)["big"]]
    assert set(ids10) <= set(ids50) and ids10 == sorted(ids10, key=lambda i: int(i[1:]))
