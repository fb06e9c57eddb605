"""Fault injection on a whole tiny MOSSA study: damaged states files are detected, rebuilt, and the tables stay right."""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from taskscope.pipeline import load_config, run_study
from taskscope.studies.mossa.extract import STATES_FILE


@pytest.fixture(scope="module")
def tiny_config():
    return load_config("tiny")


@pytest.fixture(scope="module")
def finished_run(tiny_config, tmp_path_factory):
    return run_study(tiny_config, tmp_path_factory.mktemp("tiny") / "run")


def _copy(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    return run_dir


def _states(run_dir, finished_run, item):
    return run_dir / finished_run.stages["extract"]["folder"] / "items" / item / STATES_FILE


def test_the_manifest_of_a_study_names_its_models_seeds_and_stages(finished_run, tiny_config):
    manifest = finished_run.manifest
    assert manifest["status"] == "succeeded" and manifest["study"] == {"kind": "mossa", "name": "tiny"}
    stages = {stage["name"]: stage for stage in manifest["stages"]}
    assert list(stages) == ["tasks", "controls", "control_scores", "experimental", "extract", "similarity", "ceiling", "analysis", "report"]
    from taskscope.studies.mossa.stages import mossa_stages

    declared = {stage.name: stage.version for stage in mossa_stages()}
    assert all(s["version"] == declared[name] and s["compute_seconds"] > 0 for name, s in stages.items())
    base = manifest["models"][0]
    assert base["spec"] == "tiny:llama" and len(base["fingerprint"]) == 64
    assert manifest["seeds"]["tasks.seed"] == tiny_config.tasks.seed
    assert manifest["dtypes"]["extraction.load_dtype"] == "float32"
    # every extraction job decides on prefix sharing once per task: each control (one task, per seed) + 3 models x 4 tasks
    decisions = manifest["fast_paths"]["extract.share_prefix"]
    assert decisions["used"] + sum(decisions["skipped"].values()) == 4 * tiny_config.control_seeds + 3 * 4
    assert stages["extract"]["fast_paths"]["extract.share_prefix"] == decisions


def test_a_truncated_states_file_is_rebuilt_with_what_reads_it(finished_run, tmp_path, caplog):
    run_dir = _copy(finished_run, tmp_path)
    states = _states(run_dir, finished_run, "exp-instruction_tuned")
    states.write_bytes(states.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="taskscope.pipeline"):
        run = run_study(finished_run.config, run_dir)
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "items/exp-instruction_tuned/states.safetensors: sha256 differs" in warnings
    cached = {name: info["cached"] for name, info in run.stages.items()}
    assert cached == {"tasks": True, "controls": True, "control_scores": True, "experimental": True, "ceiling": False, "extract": False,
                      "similarity": False, "analysis": False, "report": False}
    for table in ("mossa", "layer_summary"):
        pd.testing.assert_frame_equal(run.tables[table], finished_run.tables[table])


def test_an_altered_but_valid_states_file_is_not_used(finished_run, tmp_path, caplog):
    run_dir = _copy(finished_run, tmp_path)
    states = _states(run_dir, finished_run, "control-" + finished_run.tables["mossa"].task.iloc[0])
    tensors = load_file(str(states))
    save_file({name: tensor * 1.5 + 0.1 for name, tensor in tensors.items()}, str(states))
    with caplog.at_level(logging.WARNING, logger="taskscope.pipeline"):
        run = run_study(finished_run.config, run_dir)
    assert "states.safetensors: sha256 differs" in " ".join(r.getMessage() for r in caplog.records)
    assert not run.stages["similarity"]["cached"] and not run.stages["report"]["cached"]
    pd.testing.assert_frame_equal(run.tables["mossa"], finished_run.tables["mossa"])
    pd.testing.assert_frame_equal(run.tables["layer_summary"], finished_run.tables["layer_summary"])


def test_a_damaged_control_model_is_trained_again_and_the_tables_do_not_change(finished_run, tmp_path, caplog):
    run_dir = _copy(finished_run, tmp_path)
    controls = run_dir / finished_run.stages["controls"]["folder"] / "items"
    weights = sorted(controls.glob("*/train/**/final/adapter/adapter_model.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[:200])
    with caplog.at_level(logging.WARNING):
        run = run_study(finished_run.config, run_dir)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "adapter_model.safetensors: sha256 differs" in messages and "final weights" in messages
    assert run.stages["tasks"]["cached"] and run.stages["experimental"]["cached"]
    assert not any(run.stages[n]["cached"] for n in ("controls", "extract", "similarity", "analysis", "report"))
    pd.testing.assert_frame_equal(run.tables["mossa"], finished_run.tables["mossa"])


def test_an_edited_task_definition_reruns_the_tasks_stage(tiny_config, tmp_path, write_sni, sni_data):
    from taskscope.pipeline.executors import get_executor
    from taskscope.pipeline.stages import run_stages
    from taskscope.studies.common.tasks import read_tasks
    from taskscope.studies.mossa.stages import mossa_stages

    for name in ("task1_a", "task2_b"):
        write_sni(name, sni_data(n_instances=6, Definition=f"Answer {name}."))
    data = tmp_path / "sni"
    config = tiny_config.model_copy(update={"tasks": tiny_config.tasks.model_copy(update={
        "source": f"sni:{data}", "clusters": None, "max_tasks_per_cluster": None, "options": {}, "n_inputs": 2,
        "n_train": 2})})
    stages = [s for s in mossa_stages() if s.name in ("tasks",)]  # nothing is trained: the key is what matters
    first = run_stages(stages, config, tmp_path / "run", get_executor("local"))["tasks"]
    assert run_stages(stages, config, tmp_path / "run", get_executor("local"))["tasks"].cached
    write_sni("task2_b", sni_data(n_instances=6, Definition="An edited definition that must reach the prompts."))
    second = run_stages(stages, config, tmp_path / "run", get_executor("local"))["tasks"]
    assert not second.cached and second.key != first.key
    assert "An edited definition that must reach the prompts." in json.dumps(read_tasks(second.folder))
    assert "An edited definition" not in json.dumps(read_tasks(first.folder))
