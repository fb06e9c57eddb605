"""The whole MOSSA study on a tiny random model: outputs, Run object, resume after a crash, partial reruns, CLI."""

import json
import re
import shutil

import pandas as pd
import pytest

from taskscope.pipeline import load_config, run_study
from taskscope.studies.mossa import extract as extract_module
from taskscope.studies.mossa.run import MossaRun



@pytest.fixture(scope="module")
def tiny_config():
    return load_config("tiny")


@pytest.fixture(scope="module")
def finished_run(tiny_config, tmp_path_factory):
    return run_study(tiny_config, tmp_path_factory.mktemp("tiny") / "run")


def test_whole_pipeline_outputs(finished_run, tiny_config):
    table = finished_run.tables["mossa"]
    assert {"experimental_model", "task", "cluster", "layer", "kernel", "cka", "ci_low", "ci_high"} <= set(table.columns)
    n_tasks = table.task.nunique()
    assert n_tasks == 4 and set(table.experimental_model) == set(tiny_config.model_names())
    assert len(table) == 3 * n_tasks * 3  # models x tasks x (2 blocks + embeddings)
    # every prompt ends in "Output: ", so the last token's embedding (layer 0) is one constant vector: CKA undefined
    assert table.loc[table.layer == 0, ["cka", "ci_low", "ci_high"]].isna().all().all()
    blocks = table[table.layer > 0]
    assert blocks.cka.between(-1e-6, 1 + 1e-6).all() and (blocks.ci_low <= blocks.ci_high + 1e-9).all()
    heldout = table[table.heldout]
    assert set(heldout.experimental_model) == {"instruction_tuned_heldout"} and set(heldout.cluster) == {"nli"}

    layer_map = finished_run.layer_map
    assert layer_map.num_layers == 3 and layer_map.params == tiny_config.layer_map.model_dump()
    assert layer_map.undefined == (0,) and layer_map.labels[0] is None  # NaN layer: in no band
    assert {"ceiling", "ceiling_comparison", "cluster_summary", "controls", "differences", "layer_summary",
            "mossa"} <= set(finished_run.tables)

    controls = finished_run.tables["controls"]
    assert len(controls) == n_tasks * tiny_config.control_seeds
    assert set(controls["item"]) == {t if s == 0 else f"{t}@s{s}" for t in table.task.unique() for s in range(2)}
    assert (controls["n_validation"] > 0).all() and set(controls["stop_reason"]) <= {"max_steps", "epochs",
                                                                                       "target_reached", "no_improvement"}
    gain = controls["base_loss"] - controls["control_loss"]
    assert (controls["learned"] == (gain > tiny_config.control_evaluation.learned_margin)).all()
    assert (controls.groupby("task")["base_loss"].nunique() == 1).all()  # one base score per task, shared by seeds

    ceiling = finished_run.tables["ceiling"]
    assert set(ceiling["pair"]) == {"s0-s1"} and len(ceiling) == n_tasks * 3
    assert ceiling.loc[ceiling.layer > 0, "cka"].between(0, 1 + 1e-6).all()
    comparison = finished_run.tables["ceiling_comparison"]
    assert len(comparison) == len(table) and comparison.loc[comparison.layer > 0, "within_noise"].notna().all()

    written = json.loads((finished_run.run_dir / "findings.json").read_text())
    findings = written["findings"]
    assert [f["id"] for f in findings] == ["C1", "N1", "F1", "F2", "F3", "F4", "R1"]
    sensitivity = written["sensitivity"]  # the massive-activation check: the layers whose conclusion flips
    assert sensitivity["top_k"] == 3 and [r["layer"] for r in sensitivity["layers"]] == [0, 1, 2]
    assert sensitivity["flipped_layers"] == [r["layer"] for r in sensitivity["layers"] if r["flipped"]]
    assert {f["verdict"] for f in findings} <= {"supported", "contradicted", "inconclusive"}
    assert findings[4]["verdict"] == "inconclusive" and findings[4]["n"] == 1  # one held-out task cannot decide

    html = finished_run.report_path.read_text()
    assert not re.search(r"<script[^>]+src=[\"']?https?:", html) and "reference_model" in html
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Controls") < html.index("<h2>Layer map</h2>")
    assert "noise ceiling" in html
    assert (finished_run.figures_dir / "layer_map.png").is_file()
    assert (finished_run.run_dir / "logs" / "run.log").read_text().count("stage report: done") == 1
    assert finished_run.config == tiny_config


def test_changing_one_field_reruns_only_dependent_stages(finished_run, tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    changed = tiny_config.model_copy(update={"layer_map": tiny_config.layer_map.model_copy(update={"alpha": 0.1})})
    run = run_study(changed, run_dir)
    cached = {name: info["cached"] for name, info in run.stages.items()}
    assert cached == {"tasks": True, "controls": True, "control_scores": True, "experimental": True, "extract": True,
                      "similarity": True, "ceiling": True, "analysis": False, "report": False}
    assert run.layer_map.params["alpha"] == 0.1


def test_killed_mid_extract_resumes_without_redoing_finished_work(finished_run, tiny_config, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    for name in ("extract", "similarity", "ceiling", "analysis", "report"):  # as if stopped before extraction
        shutil.rmtree(run_dir / finished_run.stages[name]["folder"])
    real_job = extract_module.extract_job
    calls = []

    def crashing_job(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during extraction")
        calls.append(args[0])
        return real_job(*args)

    monkeypatch.setattr(extract_module, "extract_job", crashing_job)
    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_config, run_dir)
    extract_dir = run_dir / finished_run.stages["extract"]["folder"]
    assert not (extract_dir / "_done.json").exists()
    assert len([p for p in (extract_dir / "items").iterdir() if (p / "_done.json").exists()]) == 2
    trained = ("tasks", "controls", "experimental")
    markers = {n: (run_dir / finished_run.stages[n]["folder"] / "_done.json").read_text() for n in trained}

    resumed = []
    monkeypatch.setattr(extract_module, "extract_job", lambda *args: (resumed.append(args[0]), real_job(*args)))
    run = run_study(tiny_config, run_dir)
    assert all(run.stages[n]["cached"] for n in trained) and not run.stages["extract"]["cached"]
    assert {n: (run_dir / finished_run.stages[n]["folder"] / "_done.json").read_text() for n in trained} == markers
    n_items = 4 * 2 + 3  # two controls (seeds) per task + one per experimental model
    assert len(resumed) == n_items - 2 and not set(resumed) & set(calls)
    pd.testing.assert_frame_equal(run.tables["mossa"], finished_run.tables["mossa"])


def _version() -> None:
    print("taskscope")


def test_cli_function_reuses_a_finished_run(finished_run):
    import typer
    from typer.testing import CliRunner

    from taskscope.pipeline import run_command

    app = typer.Typer()
    app.command("run")(run_command)
    app.command("version")(_version)  # a second command keeps "run" a subcommand
    config_path = finished_run.run_dir / "study.yaml"
    result = CliRunner().invoke(app, ["run", str(config_path), "--run-dir", str(finished_run.run_dir)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    assert all(info["cached"] for info in MossaRun(finished_run.run_dir).stages.values())
