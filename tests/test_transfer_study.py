"""The transfer study end to end on tiny random models: outputs, analyses against scipy, resume, partial reruns, config errors."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from taskscope.pipeline import run_study
from taskscope.pipeline.config import CONFIG_DIR, ConfigError, config_from_dict, load_config
from taskscope.studies.mossa.config import MossaConfig
from taskscope.studies.transfer.analysis import expected_tables
from taskscope.studies.transfer.config import TransferConfig
from taskscope.studies.transfer.run import TransferRun


@pytest.fixture(scope="module")
def tiny():
    return load_config("transfer_tiny")


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    return run_study(tiny, tmp_path_factory.mktemp("transfer") / "run")


@pytest.fixture(scope="module")
def schemes_run(tmp_path_factory):
    return run_study(CONFIG_DIR / "transfer_tiny_schemes.yaml", tmp_path_factory.mktemp("schemes") / "run")


def _rho(x, y) -> float:
    return float(stats.spearmanr(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)).statistic)


def test_open_run_gives_the_transfer_view_and_rebuilds_its_report(tiny_run, tmp_path):
    from taskscope import open_run
    from taskscope.pipeline.run import rebuild_report

    view = open_run(tiny_run.run_dir)
    assert isinstance(view, TransferRun) and view.tables["fewshot"].equals(tiny_run.tables["fewshot"])
    assert {key.split("/")[1] for key in view.models} == {"instruction_tuned"}
    path = rebuild_report(view.run_dir, tmp_path / "again")
    assert path.is_file() and "fewshot" in path.read_text().lower()


def test_tiny_run_writes_every_table_figure_and_a_self_contained_report(tiny_run, tiny):
    assert isinstance(tiny_run, TransferRun) and tiny_run.config == tiny
    assert sorted(tiny_run.tables) == sorted(expected_tables(tiny))
    fewshot = tiny_run.tables["fewshot"]
    unseen = ["coref_gender", "paraphrase_synonym", "commonsense_size"]
    assert sorted(set(fewshot.task)) == sorted(unseen)
    # models x tasks x (shots 0 repeated per seed + shots 2 x 2 seeds) x 4 test instances
    assert len(fewshot) == 2 * 3 * (2 + 2) * 4 and set(fewshot.seed) == {0, 1} and set(fewshot.shots) == {0, 2}
    icl = tiny_run.tables["icl"]
    assert set(icl.with_definition) == {True, False} and set(icl.k) == {1} and len(icl) == 2 * 3 * 2 * 4
    seen = tiny_run.tables["seen_loss"]
    assert set(seen.task) == {"sentiment_negation", "qa_capitals"} and set(seen.split) == {"train", "validation", "test"}
    assert seen.groupby("task").task_size.first().to_dict() == {"sentiment_negation": 4, "qa_capitals": 8}
    assert np.isfinite(seen.loss).all() and np.isfinite(fewshot.loss).all()
    figures = {p.name for p in tiny_run.figures_dir.iterdir()}
    assert {"transfer_curves_rouge_l.png", "transfer_curves_loss.png", "correlation_scatter.png", "change_scatter.png",
            "trajectory_icl_loss.png", "trajectory_fewshot_loss.png"} <= figures
    html = tiny_run.report_path.read_text()
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=[\"']?https?:", html)
    assert "Few-shot transfer curves" in html and "Checkpoint trajectories" in html
    sanity = tiny_run.tables["sanity"]  # the sanity rule is computed into the run, not only written down
    assert sorted(sanity["model"]) == sorted(set(fewshot["model"]))
    mean_loss = fewshot.groupby(["model", "shots", "seed", "task"])["loss"].mean().groupby(["model", "shots"]).mean()
    for row in sanity.itertuples():
        assert row.passes == (mean_loss[row.model, max(fewshot["shots"])] < mean_loss[row.model, 0])
    assert "Sanity rule" in html and "Only 3 unseen tasks: no task-level claim can be decided" in html
    assert html.index("<h2>Findings</h2>") < html.index("Few-shot transfer curves")  # opens with the verdicts
    assert html.count("Plotly.newPlot") >= 6 and html.count("plotly.js v") == 1  # interactive, plotly.js inlined once
    per_task_section = html.split("<h2>Per-task scores</h2>")[1].split("<h2>")[0]
    samples = html.split("<h2>Sample predictions</h2>")[1].split("<h2>")[0]
    for task in set(fewshot["task"]):
        assert f"<td>{task}</td>" in per_task_section and f"<td>{task}</td>" in samples


def test_transfer_curves_average_tasks_then_spread_over_seeds(tiny_run):
    fewshot = tiny_run.tables["fewshot"]
    curves = tiny_run.tables["transfer_curves"]
    part = fewshot[(fewshot.model == "instruction_tuned") & (fewshot.shots == 2)]
    per_seed = part.groupby(["seed", "task"]).loss.mean().groupby("seed").mean()
    row = curves[(curves.series == "instruction_tuned") & (curves.shots == 2) & (curves.metric == "loss")].iloc[0]
    assert row["mean"] == pytest.approx(per_seed.mean()) and row["std"] == pytest.approx(per_seed.std(ddof=1))
    assert row["n_seeds"] == 2 and row["n_tasks"] == 3


def test_spearman_tables_match_scipy_on_the_per_task_losses(tiny_run):
    fewshot, icl = tiny_run.tables["fewshot"], tiny_run.tables["icl"]
    fs = fewshot[fewshot.shots == 2].groupby(["model", "task"]).loss.mean()
    ic = icl[icl.with_definition].groupby(["model", "task"]).loss.mean()  # first with_definition setting: True
    correlations = tiny_run.tables["correlations"]
    for model in ("pretrained", "instruction_tuned"):
        row = correlations[(correlations.model == model) & (correlations.shots == 2) & (correlations.x == "fewshot_loss")]
        assert row.rho.iloc[0] == pytest.approx(_rho(fs[model], ic[model].loc[fs[model].index]))
        assert row.n_tasks.iloc[0] == 3
    change = tiny_run.tables["change_correlation"]
    row = change[change.shots == 2].iloc[0]
    d_fs = fs["instruction_tuned"] - fs["pretrained"]
    d_ic = (ic["instruction_tuned"] - ic["pretrained"]).loc[d_fs.index]
    assert (row.before, row.after) == ("pretrained", "instruction_tuned")
    assert row.rho == pytest.approx(_rho(d_fs, d_ic))


def test_trajectory_covers_base_and_every_checkpoint_and_correlates_changes_around_the_step(tiny_run):
    trajectory = tiny_run.tables["trajectory"]
    assert sorted(set(trajectory.step)) == [0, 2, 4]
    wide = trajectory.pivot(index="task", columns="step", values="icl_loss")
    base_icl = tiny_run.tables["icl"].query("model == 'pretrained' and with_definition").groupby("task").loss.mean()
    np.testing.assert_allclose(wide[0].to_numpy(), base_icl.loc[wide.index].to_numpy(), rtol=1e-6)
    table = tiny_run.tables["trajectory_correlation"]
    row = table[table.comparison == "icl_loss before vs after"].iloc[0]
    assert row.step == 2 and row.rho == pytest.approx(_rho(wide[2] - wide[0], wide[4] - wide[2]))


def test_second_run_reuses_every_stage(tiny_run, tiny):
    run = run_study(tiny, tiny_run.run_dir)
    assert all(info["cached"] for info in run.stages.values()) and len(run.stages) == 8
    pd.testing.assert_frame_equal(run.tables["per_task"], tiny_run.tables["per_task"])


def test_changed_fewshot_grid_reruns_only_dependent_stages_and_reuses_cached_evaluations(tiny_run, tiny, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    changed = tiny.model_copy(update={"fewshot": tiny.fewshot.model_copy(update={"seeds": [0]})})
    run = run_study(changed, run_dir)
    cached = {name: info["cached"] for name, info in run.stages.items()}
    assert cached == {"tasks": True, "instruction_tune": True, "seen_eval": True, "icl": True, "fewshot": False,
                      "trajectory": True, "analysis": False, "report": False}
    assert set(run.tables["fewshot"].seed) == {0}
    # every (task, shots, seed) result came from the evaluation cache: nothing was fine-tuned again
    assert not list((run_dir / run.stages["fewshot"]["folder"]).rglob("result.json"))
    before = tiny_run.tables["fewshot"].query("seed == 0").reset_index(drop=True)
    pd.testing.assert_frame_equal(run.tables["fewshot"], before)


def test_sampling_data_limit_and_unsupervised_analyses(schemes_run):
    config = schemes_run.config
    seen = schemes_run.tables["seen_loss"]
    assert seen.groupby("task").task_size.first().to_dict() == config.tasks.caps
    bins = schemes_run.tables["loss_by_task_size"]
    assert set(bins.scheme) == {"proportional", "uniform"} and set(bins.split) == {"train", "test"}
    assert bins.groupby(["scheme", "split"]).n_tasks.sum().eq(4).all()
    low = seen[(seen.model == "uniform") & (seen.split == "test") & (seen.task_size < bins.bin_high.min())]
    row = bins[(bins.scheme == "uniform") & (bins.split == "test") & (bins.bin == 0)].iloc[0]
    assert row.mean_loss == pytest.approx(low.groupby("task").loss.mean().mean())
    unseen = schemes_run.tables["sampling_unseen"]
    icl = schemes_run.tables["icl"]
    assert unseen.set_index("model").icl_loss["uniform"] == pytest.approx(
        icl[icl.model == "uniform"].groupby("task").loss.mean().mean())

    limit = schemes_run.tables["data_limit"]
    assert limit.groupby("model").cap.first().to_dict() == {"proportional_limit2": 2, "proportional": 8}
    summary = schemes_run.tables["model_summary"].set_index(["model", "measure"]).value
    unsupervised = schemes_run.tables["unsupervised"].set_index("measure")
    for measure, row in unsupervised.iterrows():
        assert row["without"] == pytest.approx(summary["proportional", measure])
        assert row["with"] == pytest.approx(summary["proportional_unsupervised", measure])
        assert row["difference"] == pytest.approx(row["with"] - row["without"])
    # the ablation really differs in training: the mixed model's log holds unsupervised steps
    tune = schemes_run.run_dir / schemes_run.stages["instruction_tune"]["folder"] / "items"
    logs = {name: (tune / name / "train" / "log.jsonl").read_text() for name in ("proportional", "proportional_unsupervised")}
    assert "unsupervised" in logs["proportional_unsupervised"] and "unsupervised" not in logs["proportional"]
    assert {"loss_by_task_size.png", "data_limit.png"} <= {p.name for p in schemes_run.figures_dir.iterdir()}


# ---------------------------------------------------------------- configs
def _tiny_dict() -> dict:
    import yaml

    return yaml.safe_load((CONFIG_DIR / "transfer_tiny.yaml").read_text())


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["fewshot"].update(shotz=[1]), "fewshot.shotz"),
    (lambda d: d["fewshot"].update(shots=[0, 50]), "fewshot.shots"),
    (lambda d: d["icl"].update(k=-1), "icl.k"),
    (lambda d: d["tasks"].update(caps={"qa_capitals": 0}), "tasks.caps"),
    (lambda d: d["fewshot"]["train"].update(lora=None), "fewshot"),
    (lambda d: d["instruction_tuning"].update(lr=-1), "instruction_tuning.lr"),
    (lambda d: d["models"].append({"name": "x", "kind": "pretrained", "train": {"cap": 2}}), "models.2"),
    (lambda d: d["analyses"]["trajectory"].update(step=3), "analyses.trajectory.step"),
    (lambda d: d["analyses"].update(sampling=["instruction_tuned", "nope"]), "analyses.sampling"),
    (lambda d: d["analyses"].update(data_limit=["instruction_tuned"]), "analyses.data_limit"),
    (lambda d: d["analyses"].update(unsupervised=["pretrained", "instruction_tuned"]), "analyses.unsupervised"),
    (lambda d: d.update(study="layers"), "study: unknown study kind 'layers'"),
    (lambda d: d.update(context={"kind": "none"}), "`context` was renamed `prompt_format`"),
])
def test_config_errors_name_the_field(change, field):
    data = _tiny_dict()
    change(data)
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "tiny.yaml")
    assert field in str(info.value) and "tiny.yaml" in str(info.value)


def test_load_config_dispatches_on_the_study_key(tmp_path):
    assert isinstance(load_config(CONFIG_DIR / "tiny.yaml"), MossaConfig)
    assert isinstance(load_config("transfer_tiny"), TransferConfig)
    mossa = tmp_path / "mossa.yaml"
    mossa.write_text((CONFIG_DIR / "tiny.yaml").read_text() + "\nstudy: mossa\n")
    assert isinstance(load_config(mossa), MossaConfig)
    other = tmp_path / "other.yaml"
    other.write_text("study: layers\n")
    with pytest.raises(ConfigError, match="study: unknown study kind 'layers'; known: mossa, transfer"):
        load_config(other)


def test_defaults_reproduce_the_paper_and_presets_validate():
    config = TransferConfig()
    assert config.fewshot.shots == [0, 5, 10, 20, 40] and config.icl.k == 3
    assert config.tasks.unseen_test == 100 and config.tasks.fewshot_pool == 40
    assert set(config.fewshot.contexts) == {"definition", "none"} and config.icl.with_definition == [True, False]
    from taskscope.train.config import TrainConfig

    lora = TrainConfig.model_validate(config.fewshot.train)
    assert (lora.lora.r, lora.lora.alpha, lora.lora.dropout, lora.lr, lora.epochs, lora.batch_size) == (
        16, 32, 0.05, 1e-3, 5.0, 32)
    presets = sorted(CONFIG_DIR.glob("transfer_*.yaml"))
    assert {"transfer_quickstart.yaml", "transfer_paper_t5.yaml"} <= {p.name for p in presets}
    for path in presets:
        required = ["tasks.source=sni:/data/natural-instructions"] if "???" in path.read_text() else []
        assert isinstance(load_config(path, required), TransferConfig), path


def test_the_run_command_dispatches_a_transfer_config(tiny_run, tmp_path):
    """`taskscope run transfer.yaml` (and `run_study(path)`) run the transfer study, reusing a finished run."""
    from typer.testing import CliRunner

    from taskscope.cli import app

    config = CONFIG_DIR / "transfer_tiny.yaml"
    assert isinstance(run_study(config, tiny_run.run_dir), TransferRun)
    result = CliRunner().invoke(app, ["run", str(config), "--run-dir", str(tiny_run.run_dir)])
    assert result.exit_code == 0, result.output
    stages = json.loads((tiny_run.run_dir / "stages.json").read_text())
    assert all(record["cached"] for record in stages.values())


def test_the_report_opens_with_verdicts_warns_on_three_tasks_and_checks_the_sanity_rule(tiny_run):
    """Issue 16: findings.json with T1-T6, the report's first section; n = 3 tasks can decide nothing."""
    from taskscope.analysis.findings import read_findings

    findings = read_findings(tiny_run.run_dir / "findings.json")
    assert [f.id for f in findings] == ["T1", "T2", "T3", "T4", "T5", "T6"]
    by_id = {f.id: f for f in findings}
    assert by_id["T1"].n == 3 and by_id["T1"].verdict == "inconclusive" and "at least 8" in by_id["T1"].reason
    assert by_id["T6"].reason.startswith("not run")
    page = tiny_run.report_path.read_text()
    assert page.index("<h2>Findings</h2>") < page.index("Few-shot transfer curves")
    assert "Only 3 unseen tasks" in page and "Sanity rule" in page


def test_schemes_run_has_findings_for_sampling_limits_and_mixing(schemes_run):
    from taskscope.analysis.findings import read_findings

    by_id = {f.id: f for f in read_findings(schemes_run.run_dir / "findings.json")}
    assert not by_id["T3"].reason.startswith("not run") and not by_id["T6"].reason.startswith("not run")
    assert by_id["T4"].n == 2 and by_id["T4"].verdict == "inconclusive"


def test_the_tasks_stage_records_what_the_loader_dropped_in_the_manifest(tiny_run):
    folder = tiny_run.run_dir / tiny_run.stages["tasks"]["folder"]
    recorded = json.loads((folder / "dropped.json").read_text())
    assert (recorded["n_tasks"], recorded["n_records"]) == (0, 0)  # the builtin source drops nothing
    assert tiny_run.manifest["dropped"]["files"] == [f"{tiny_run.stages['tasks']['folder']}/dropped.json"]
