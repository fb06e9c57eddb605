"""Training logs through accelerate's trackers: the scalars TensorBoard receives equal the JSONL log, a study's
runs land in one ``RUN/logs/tensorboard`` folder, and a tracker that is not installed fails at validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from taskscope.models import tiny_model
from taskscope.tasks.formats import FormattedExample
from taskscope.train import TrainConfig, train
from taskscope.train import logging as train_logging
from taskscope.train.logging import Tracking, read_log, resolve_trackers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data() -> dict[str, list[FormattedExample]]:
    return {"copy": [FormattedExample("copy", f"c{i}", f"copy {c} ->", (f" {c}",), 0) for i, c in enumerate("abcdef")],
            "next": [FormattedExample("next", f"n{i}", f"after {c} ->", (f" {chr(ord(c) + 1)}",), 0)
                     for i, c in enumerate("abcdef")]}


def _config(**overrides) -> TrainConfig:
    return TrainConfig(**{"lr": 3e-3, "batch_size": 4, "max_steps": 4, "lora": None, "log_every": 1, "seed": 1,
                          "sampler": "proportional", **overrides})


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_through_accelerate_gets_the_jsonl_numbers_in_the_run_logs_folder(tmp_path: Path) -> None:
    logs = tmp_path / "run" / "logs"
    result = train(tiny_model("llama", seed=3), _data(), _config(), tmp_path / "out", progress=False,
                   tracking=Tracking(logs_dir=logs, run_name="controls/copy", project="study"))
    records = [r for r in read_log(result.log_path) if r["kind"] == "train"]
    assert len(records) == 4
    scalars = _scalars(logs / "tensorboard" / "controls" / "copy")
    assert {"train/loss", "train/lr", "train/loss/copy", "train/loss/next", "sampler/p/copy"} <= set(scalars)
    for record in records:
        assert scalars["train/loss"][record["step"]] == pytest.approx(record["loss"], rel=1e-6)
        for task, value in record["task_loss"].items():
            assert scalars[f"train/loss/{task}"][record["step"]] == pytest.approx(value, rel=1e-6)
    assert not (tmp_path / "out" / "tensorboard").exists()  # nothing buried in the training folder
    run_folder = logs / "tensorboard" / "controls" / "copy"
    assert not [p for p in run_folder.iterdir() if p.is_dir()]  # one TensorBoard run per model, no hparams runs


def test_no_trackers_means_jsonl_only_and_none_means_tensorboard_when_installed(tmp_path: Path, monkeypatch) -> None:
    train(tiny_model("llama", seed=3), _data(), _config(log_with=[]), tmp_path / "a", progress=False)
    assert (tmp_path / "a" / "log.jsonl").is_file() and not (tmp_path / "a" / "tensorboard").exists()
    assert resolve_trackers(None) == ["tensorboard"]
    monkeypatch.setattr(train_logging, "tracker_installed", lambda name: False)
    assert resolve_trackers(None) == []
    assert resolve_trackers(["tensorboard"]) == ["tensorboard"]  # explicit choices are checked at validation


@pytest.mark.parametrize("tracker", ["wandb", "mlflow", "trackio", "tensorboard"])
def test_a_tracker_that_is_not_installed_is_a_one_line_config_error(tracker: str, monkeypatch) -> None:
    from taskscope.pipeline.config import ConfigError, config_from_dict

    monkeypatch.setattr(train_logging, "tracker_installed", lambda name: name != tracker)
    with pytest.raises(ValidationError, match=f"tracker '{tracker}' is not installed"):
        TrainConfig(log_with=[tracker])
    with pytest.raises(ConfigError) as err:
        config_from_dict({"control_training": {"log_with": [tracker]}})
    lines = [line for line in str(err.value).splitlines()[1:] if "log_with" in line]
    assert len(lines) == 1 and f"tracker '{tracker}' is not installed" in lines[0]
    with pytest.raises(ValidationError, match="Input should be"):
        TrainConfig(log_with=["neptune"])


def test_resuming_with_other_trackers_is_allowed(tmp_path: Path) -> None:
    from taskscope.train.loop import _check_same_config

    saved = _config().model_dump(mode="json")
    _check_same_config(saved, _config(log_with=[]), tmp_path)  # logging does not change the data order
    with pytest.raises(ValueError, match="lr"):
        _check_same_config(saved, _config(lr=1e-2), tmp_path)


def test_hyperparameters_are_flat_scalars() -> None:
    from taskscope.train.logging import hyperparameters

    flat = hyperparameters(TrainConfig(lora={"r": 4, "alpha": 8}, sampler_kwargs={"T": 3}, log_with=["tensorboard"]))
    assert flat["lora.r"] == 4 and flat["sampler_kwargs.T"] == 3 and flat["max_steps"] == "none"
    assert flat["log_with"] == '["tensorboard"]'
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
