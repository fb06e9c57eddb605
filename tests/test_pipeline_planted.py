"""A MOSSA study whose answer is known: a wiring mistake cannot pass it.

The control of task t is the tiny base model with the MLP weights of blocks >= K[t] perturbed (a different k
per task; replicate controls get other random perturbations of the same blocks), so its hidden states equal
the base model's exactly up to layer K[t] and differ from layer K[t] + 1 on.  The pre-trained experimental
model *is* the base model, so in ``mossa.csv`` its CKA with C_t must be 1 at layers 1..K[t] and below 1 after;
the noise ceiling (control vs replicate) must show the same k.  The intervals must agree with the public
``taskscope.similarity.bootstrap_ci`` on the same states (an independent Monte-Carlo run of the same
procedure).  `check_planted` is shown to fail when tasks meet another task's control and when the interval
quantiles are halved, by rerunning the similarity stage with those mistakes patched in.
"""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from taskscope.pipeline import load_config, run_study
from taskscope.studies.mossa import analysis as mossa_analysis
from taskscope.studies.mossa import extract as mossa_extract
from taskscope.studies.mossa import tasks as mossa_tasks
from taskscope.studies.mossa import training as mossa_training

N_BLOCKS = 6
TOLERANCE = 1e-5


def _perturbed(base_spec: str, load: dict, first_block: int, seed: int, out_dir: Path) -> None:
    """Save the base model with blocks >= first_block perturbed, as a trained item (``model.json``, kind full)."""
    from taskscope.models import load_model

    loaded = load_model(base_spec, **load)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in loaded.model.model.layers[first_block:]:
            for weight in block.mlp.parameters():
                weight.add_(torch.randn(weight.shape, generator=generator) * weight.std() * 1.5)
    weights = Path(out_dir) / "model"
    loaded.model.save_pretrained(weights, safe_serialization=True)
    loaded.tokenizer.save_pretrained(weights)
    (Path(out_dir) / mossa_training.CHECKPOINT_FILE).write_text(json.dumps(
        {"base": base_spec, "kind": "full", "steps": 0, "stop_reason": "planted", "weights": "model"}))


def _planted_k(tasks) -> dict[str, int]:
    return {task: 1 + i for i, task in enumerate(sorted(tasks))}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    config = load_config("tiny")
    config = config.model_copy(update={
        "model": f"tiny:llama:{N_BLOCKS}",
        "tasks": config.tasks.model_copy(update={"clusters": ["arithmetic", "closed_book_qa", "sentiment"]}),
        "models": [m for m in config.models if not (m.heldout_tasks or m.heldout_clusters)],
        "control_seeds": 2,
        "control_evaluation": config.control_evaluation.model_copy(update={"generate": False, "n_bootstrap": 0}),
        "similarity": config.similarity.model_copy(update={
            "bootstrap": config.similarity.bootstrap.model_copy(update={"n_resamples": 400, "confidence": 0.9})}),
        "layer_map": config.layer_map.model_copy(update={"n_bootstrap": 20, "n_permutations": 16}),
        "report": config.report.model_copy(update={"figure_formats": []}),
    })
    run_dir = tmp_path_factory.mktemp("planted") / "run"
    patch = pytest.MonkeyPatch()
    tasks = [t.name for t in mossa_tasks.select_suite(config)]
    k = _planted_k(tasks)

    def control_job(base_spec, load, train_config, task, records, validation, tracking, out_dir):
        _perturbed(base_spec, load, k[task], 1000 * k[task] + int(train_config.get("seed", 0)), out_dir)

    def instruction_tune_job(base_spec, load, train_config, data, text_source, tracking, out_dir):
        _perturbed(base_spec, load, 3, 7, out_dir)

    patch.setattr(mossa_training, "control_job", control_job)
    patch.setattr(mossa_training, "instruction_tune_job", instruction_tune_job)
    try:
        run = run_study(config, run_dir)
    finally:
        patch.undo()
    return config, run, k


def _states(run, item: str) -> dict:
    return mossa_extract.load_states(run.run_dir / run.stages["extract"]["folder"], item)


def _onset(curve: np.ndarray) -> int:
    """The last layer (>= 1) whose CKA is 1 within tolerance before the first one that is not."""
    k = 0
    for layer in range(1, len(curve)):
        if abs(curve[layer] - 1) > TOLERANCE:
            break
        k = layer
    return k


def check_planted(run, k: dict[str, int], confidence: float = 0.9) -> None:
    """Every assertion the planted study must pass (used on the real run and on deliberately broken ones)."""
    from taskscope.similarity import bootstrap_ci

    table = run.tables["mossa"]
    base = table[(table["experimental_model"] == "pretrained") & (table["kernel"] == "linear")]
    for task, first_block in k.items():
        curve = base[base["task"] == task].sort_values("layer")["cka"].to_numpy()
        assert _onset(curve) == first_block, f"{task}: CKA leaves 1 after layer {_onset(curve)}, planted {first_block}"
        assert np.all(curve[first_block + 1:] < 1 - 1e-3), f"{task}: perturbed layers look identical to the base"

    ceiling = run.tables["ceiling"]
    for task, first_block in k.items():
        curve = ceiling[ceiling["task"] == task].sort_values("layer")["cka"].to_numpy()
        assert _onset(curve) == first_block, f"{task}: the ceiling leaves 1 after layer {_onset(curve)}"

    shifts = []
    for model in ("pretrained", "instruction_tuned"):
        states = _states(run, f"exp-{model}")
        for task, first_block in k.items():
            control = _states(run, f"control-{task}")[task]
            with warnings.catch_warnings():  # layer 0 is constant: bootstrap_ci warns about it
                warnings.simplefilter("ignore")
                ref = bootstrap_ci(states[task], control, n_resamples=400, confidence=confidence, seed=12345)
            rows = table[(table["experimental_model"] == model) & (table["task"] == task)].sort_values("layer")
            for layer in range(first_block + 1, N_BLOCKS + 1):
                row = rows[rows["layer"] == layer].iloc[0]
                width = float(ref.high[layer] - ref.low[layer])
                shifts.append(((ref.low[layer] - row["ci_low"]) / width, (row["ci_high"] - ref.high[layer]) / width))
    low_shift, high_shift = np.mean(shifts, axis=0)
    assert abs(low_shift) < 0.05 and abs(high_shift) < 0.05, \
        f"interval bounds differ from bootstrap_ci's by {low_shift:.3f} / {high_shift:.3f} interval widths"


def test_planted_onsets_are_found_per_task_in_the_table_and_the_ceiling(planted):
    config, run, k = planted
    assert len(set(k.values())) == len(k) >= 3          # a different k for every task
    check_planted(run, k)
    controls = run.tables["controls"]
    assert set(controls["stop_reason"]) == {"planted"} and len(controls) == 2 * len(k)


def _rerun_similarity(run, config, tmp_path, monkeypatch, patch) -> object:
    run_dir = tmp_path / "run"
    shutil.copytree(run.run_dir, run_dir)
    patch(monkeypatch)
    return run_study(config, run_dir, force=["similarity", "ceiling"])


def test_check_fails_when_tasks_meet_another_tasks_control(planted, tmp_path, monkeypatch):
    config, run, k = planted
    tasks = sorted(k)
    real = mossa_extract.load_states

    def rotated(extract_dir, item):
        name = item.removeprefix("control-")
        if item.startswith("control-") and name in tasks:
            other = tasks[(tasks.index(name) + 1) % len(tasks)]
            return {name: real(extract_dir, f"control-{other}")[other]}
        return real(extract_dir, item)

    broken = _rerun_similarity(run, config, tmp_path, monkeypatch,
                               lambda mp: mp.setattr(mossa_analysis, "load_states", rotated))
    monkeypatch.undo()
    with pytest.raises(AssertionError):
        check_planted(broken, k)


def test_check_fails_when_interval_quantiles_are_halved(planted, tmp_path, monkeypatch):
    import taskscope.analysis.mossa as mossa

    config, run, k = planted
    real = mossa.mossa_table

    def halved(*args, confidence=0.95, **kwargs):  # alpha / 2 halved once more: (1 - c) / 4 in each tail
        return real(*args, confidence=1 - (1 - confidence) / 2, **kwargs)

    broken = _rerun_similarity(run, config, tmp_path, monkeypatch, lambda mp: mp.setattr(mossa, "mossa_table", halved))
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="interval bounds"):
        check_planted(broken, k)
