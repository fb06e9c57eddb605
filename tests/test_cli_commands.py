"""The study commands of the CLI and the notebook API: --version, configs list, config show / validate with --set,
required settings, config-relative paths, report (rebuild), compare, open_run and a run's artifacts by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import taskscope
from taskscope.cli import app
from taskscope.pipeline.config import CONFIG_DIR, ConfigError, apply_overrides, load_config, missing_settings
from taskscope.pipeline.run import open_run, rebuild_report
from taskscope.report.compare import check_comparable, compare_runs

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny MOSSA preset run through the CLI with two --set overrides (fewer inputs, one control seed)."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(app, ["run", "tiny", "--run-dir", str(folder), "--set", "tasks.n_inputs=12",
                                 "--set", "control_seeds=1"])
    assert result.exit_code == 0, result.output
    return folder


def test_version_and_presets() -> None:
    result, out = invoke("--version")
    assert result.exit_code == 0 and out.strip() == f"taskscope {taskscope.__version__}"
    result, out = invoke("configs", "list")
    assert result.exit_code == 0
    for path in CONFIG_DIR.glob("*.yaml"):
        assert path.stem in out
    result, out = invoke("run", "--help")
    assert "tiny" in out and "transfer_quickstart" in out and "--set" in out


def test_config_show_is_resolved_with_defaults_and_typed_overrides() -> None:
    result, out = invoke("config", "show", "tiny", "--set", "tasks.n_inputs=20", "--set", "similarity.kernels=[linear, rbf]",
                         "--set", "report.title=null")
    assert result.exit_code == 0, out
    shown = yaml.safe_load(result.stdout)
    assert shown["study"] == "mossa" and shown["tasks"]["n_inputs"] == 20
    assert shown["similarity"]["kernels"] == ["linear", "rbf"] and shown["report"]["title"] is None
    from taskscope.studies.mossa.config import MossaConfig

    stated = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    defaults = MossaConfig().model_dump(mode="json")
    unstated = [key for key in defaults if key not in stated]
    assert unstated and all(shown[key] == defaults[key] for key in unstated)  # defaults the preset does not state
    assert load_config("tiny", ["tasks.n_inputs=20"]).tasks.n_inputs == 20


@pytest.mark.parametrize(("item", "expected"), [
    ("tasks.n_inputs=2", "tasks.n_inputs"), ("tasks.n_inputz=8", "did you mean 'n_inputs'"),
    ("noequals", "KEY=VALUE"), ("models.9.name=x", "no item 9"),
])
def test_bad_overrides_are_one_line_naming_the_field(item: str, expected: str) -> None:
    result, out = invoke("config", "validate", "tiny", "--no-tasks", "--set", item)
    assert result.exit_code == 1
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], out


def test_list_items_are_addressed_by_index() -> None:
    data = apply_overrides({"models": [{"name": "a"}, {"name": "b"}]}, ["models.1.name=c", "extra.deep.key=3"])
    assert data == {"models": [{"name": "a"}, {"name": "c"}], "extra": {"deep": {"key": 3}}}


def test_paper_presets_name_their_required_settings() -> None:
    for name in ("paper_llama2_7b", "paper_llama2_7b_heldout", "transfer_paper_t5", "transfer_gpu_hour"):
        data = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        assert missing_settings(data) == ["tasks.source"], name
        result, out = invoke("config", "validate", name, "--no-tasks")
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1 and "tasks.source" in errors[0] and "--set" in errors[0]
        result, out = invoke("config", "validate", name, "--no-tasks", "--set", "tasks.source=builtin")
        assert result.exit_code == 0, out


def test_docs_sections_the_presets_cite_exist() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    for path in CONFIG_DIR.glob("*.yaml"):
        for doc, section in re.findall(r'(docs/[\w.]+\.md)(?: "([^"]+)")?', path.read_text()):
            text = (root / doc).read_text()
            assert not section or re.search(rf"^#+ .*{re.escape(section)}", text, re.M), (path.name, doc, section)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch) -> None:
    study_dir = tmp_path / "study"
    (study_dir / "data").mkdir(parents=True)
    rows = [{"text": f"item {i}", "label": i % 2} for i in range(40)]
    (study_dir / "data" / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    template = {"input": "{text}: odd?", "output": "{label}", "verbalizer": {"label": {"0": "no", "1": "yes"}}}
    spec = {"datasets": [{"name": f"parity{i}", "cluster": f"c{i}", "records": "data/rows.jsonl",
                          "templates": [template]} for i in range(2)]}
    (study_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    config = {"name": "rel", "model": "tiny:llama", "tasks": {"source": "templated:spec.yaml", "n_inputs": 8,
                                                              "n_train": 8}}
    (study_dir / "my_study.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(study_dir / "my_study.yaml")
    assert loaded.tasks.source == f"templated:{study_dir / 'spec.yaml'}"
    assert loaded.output_dir == Path("runs")  # runs stay where the user starts them
    result, out = invoke("config", "validate", str(study_dir / "my_study.yaml"))
    assert result.exit_code == 0, out


def test_tasks_list_never_cuts_a_task_name(tmp_path: Path) -> None:
    long_name = "a_rather_long_task_name_that_a_user_must_copy_verbatim"
    rows = [{"text": f"item {i}", "label": i % 2} for i in range(5)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    template = {"input": "{text}", "output": "{label}"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"datasets": [
        {"name": long_name, "cluster": "a_long_cluster_name_too", "records": "rows.jsonl", "templates": [template]}]}))
    narrow = CliRunner(env={"COLUMNS": "50"})
    for extra in ([], ["--wide"]):
        result = narrow.invoke(app, ["tasks", "list", f"templated:{tmp_path / 'spec.yaml'}", *extra])
        assert result.exit_code == 0 and long_name in result.stdout, result.stdout


def test_run_records_overrides_and_open_run_exposes_tables_config_and_artifacts(tiny_run: Path) -> None:
    run = open_run(tiny_run)
    assert type(run).__name__ == "MossaRun"
    assert run.config.tasks.n_inputs == 12 and run.config.control_seeds == 1
    assert run.manifest["overrides"] == ["tasks.n_inputs=12", "control_seeds=1"]
    assert isinstance(run.tables["mossa"], pd.DataFrame) and "cka" in run.tables["mossa"]
    tasks = sorted(run.tables["mossa"]["task"].unique())
    assert sorted(key.split("/")[1] for key in run.models if key.startswith("controls/")) == tasks
    assert run.models["instruction_tuned"].startswith("tiny:llama+lora:")
    states = run.states["exp-pretrained"]
    assert sorted(states) == tasks and states[tasks[0]].shape[1] == 12  # (layers + 1, n_inputs, d)
    assert any(name.endswith(".png") for name in run.figures)
    with pytest.raises(KeyError, match="no artifact"):
        run.models["no_such_model"]


def test_report_is_rebuilt_from_stored_tables(tiny_run: Path, tmp_path: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (tiny_run / "stages").iterdir()}
    result, out = invoke("report", str(tiny_run), "--out", str(tmp_path / "again"))
    assert result.exit_code == 0, out
    text = (tmp_path / "again" / "report.html").read_text()
    assert "<html" in text and "tiny" in text and (tmp_path / "again" / "figures").is_dir()
    assert {p.name: p.stat().st_mtime_ns for p in (tiny_run / "stages").iterdir()} == before  # nothing recomputed
    assert rebuild_report(tiny_run) == tiny_run / "report.html"


def test_compare_finds_a_planted_difference(tiny_run: Path, tmp_path: Path) -> None:
    shifted = tmp_path / "shifted"
    shutil.copytree(tiny_run, shifted, ignore=shutil.ignore_patterns("stages", "attempts"))
    table = pd.read_csv(shifted / "mossa.csv")
    table.loc[table["experimental_model"] == "instruction_tuned", "cka"] -= 0.1
    table.to_csv(shifted / "mossa.csv", index=False)
    result, out = invoke("compare", str(tiny_run), str(shifted), "--out", str(tmp_path / "cmp"))
    assert result.exit_code == 0, out
    summary = pd.read_csv(tmp_path / "cmp" / "compare.csv").dropna(subset=["cka_diff"])
    tuned = summary[summary["experimental_model"] == "instruction_tuned"]
    others = summary[summary["experimental_model"] != "instruction_tuned"]
    assert len(tuned) and (tuned["cka_diff"] - -0.1).abs().max() < 1e-9
    assert len(others) and others["cka_diff"].abs().max() < 1e-12
    assert (tuned["diff_ci_low"] <= tuned["cka_diff"] + 1e-12).all()
    assert "plotly" in (tmp_path / "cmp" / "compare.html").read_text()
    result, out = invoke("compare", str(tiny_run), str(shifted))  # default output folder: inside RUN_A
    assert result.exit_code == 0 and (tiny_run / "compare" / "shifted" / "compare.csv").is_file()


def test_compare_requires_the_same_tasks() -> None:
    a = pd.DataFrame({"task": ["t1", "t2"], "kernel": "linear", "experimental_model": "m"})
    b = pd.DataFrame({"task": ["t1", "t3"], "kernel": "linear", "experimental_model": "m"})
    with pytest.raises(ValueError, match=r"only in A: \['t2'\]; only in B: \['t3'\]"):
        check_comparable(a, b)


def test_errors_on_missing_things_are_one_line(tmp_path: Path) -> None:
    result, out = invoke("report", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "no run folder" in out
    with pytest.raises(ConfigError, match="presets:"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError):
        compare_runs(open_run(tmp_path / "nope"), None, tmp_path)


def test_top_level_notebook_api(tiny_run: Path) -> None:
    import torch

    assert taskscope.open_run(tiny_run).run_dir == tiny_run
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 5, generator=generator, dtype=torch.float64)
    y = x.clone()
    y[2] = torch.randn(20, 5, generator=generator, dtype=torch.float64)  # layer 2 unrelated
    frame = taskscope.similarity_frame(x, y, ["cka", "procrustes"])
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["cka", "procrustes"]
    assert frame.index.name == "layer" and len(frame) == 3
    assert frame.loc[0, "cka"] == pytest.approx(1.0) and frame.loc[2, "cka"] < 0.9
    assert frame["cka"].tolist() == pytest.approx(taskscope.similarity.similarity(x, y, "cka").tolist())


def test_every_command_tunes_its_process_before_it_runs(monkeypatch):
    import taskscope.cli as cli

    calls = []
    monkeypatch.setattr(cli, "tune_allocator", lambda: calls.append("tuned") or True)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    invoke("configs", "list")
    assert calls == ["tuned"]
    assert cli.os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"      # Hugging Face's load bars off ...
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    invoke("configs", "list")
    assert cli.os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"      # ... unless the user asked for them
