"""Item 7 of issue 12: plug-in, model, path and task names are checked before any work; the CLI prints one line
per problem (file, field, fix, did-you-mean) and keeps tracebacks behind --debug."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taskscope.cli import app
from taskscope.pipeline.config import CONFIG_DIR, ConfigError, config_from_dict
from taskscope.pipeline.validate import check_study, validate_study

TINY = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
TRANSFER_TINY = yaml.safe_load((CONFIG_DIR / "transfer_tiny.yaml").read_text())
runner = CliRunner()


def _with(base: dict, path: str, value) -> dict:
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[int(last) if last.isdigit() else last] = value
    return data


def _problems(config) -> dict[str, str]:
    return {p.field: p.message for p in check_study(config)}


def test_the_tiny_presets_have_no_problems():
    assert check_study(config_from_dict(TINY)) == []
    transfer = {k: v for k, v in TRANSFER_TINY.items()}
    assert check_study(config_from_dict(transfer)) == []


@pytest.mark.parametrize(("path", "value", "field", "hint"), [
    ("instruction_tuning.sampler", "proportionl", "instruction_tuning.sampler", "did you mean 'proportional'?"),
    ("control_training.sampler_kwargs", {"temprature": 2}, "control_training.sampler_kwargs", ""),
    ("similarity.kernels", ["linear", "rbff"], "similarity.kernels.1", "did you mean 'rbf'?"),
    ("similarity.kernel_args", {"rbf": {"sigma": 1}}, "similarity.kernel_args.rbf", ""),
    ("model", "tiny:lama", "model", "did you mean 'llama'?"),
    ("model", "/nonexistent/model/folder", "model", "does not exist"),
    ("model", "tiny:llama+lora:/nonexistent/adapter", "model", "adapter folder"),
    ("tasks.source", "bultin", "tasks.source", "did you mean 'builtin'?"),
    ("tasks.options.n_instance", 3, "tasks.options.n_instance", "did you mean 'n_instances'?"),
    ("tasks.clusters", ["arithmetic", "nlii"], "tasks.clusters", "did you mean 'nli'?"),
    ("models.2.heldout_clusters", ["sentimnt"], "models.2.heldout_clusters",
     "did you mean 'sentiment'?"),
    ("models.2.heldout_tasks", ["nli_hypernyms"], "models.2.heldout_tasks",
     "did you mean 'nli_hypernym'?"),
])
def test_mossa_problems_name_the_field_and_a_fix(path, value, field, hint):
    config = config_from_dict(_with(TINY, path, value))
    problems = _problems(config)
    assert field in problems, problems
    assert hint in problems[field]


def test_a_model_holding_out_every_task_is_a_problem():
    clusters = TINY["tasks"]["clusters"]
    problems = _problems(config_from_dict(_with(TINY, "models.2.heldout_clusters", clusters)))
    assert "holds out every selected task" in problems["models.2"]


def test_an_unknown_executor_is_a_problem():
    problems = {p.field: p.message for p in check_study(config_from_dict(TINY), executor="rey")}
    assert "did you mean 'ray'?" in problems["executor"]


@pytest.mark.parametrize(("path", "value", "field", "hint"), [
    ("instruction_tuning.sampler", "reverse_anealing", "instruction_tuning.sampler", "'reverse_annealing'"),
    ("tasks.unseen_clusters", ["coreferenc", "paraphrase"], "tasks.unseen_clusters", "did you mean 'coreference'?"),
    ("tasks.caps", {"qa_capital": 3}, "tasks.caps", "did you mean 'qa_capitals'?"),
    ("tasks.split_dir", "/nonexistent/splits", "tasks.split_dir", "does not exist"),
])
def test_transfer_problems_name_the_field_and_a_fix(path, value, field, hint):
    problems = _problems(config_from_dict(_with(TRANSFER_TINY, path, value)))
    assert field in problems, problems
    assert hint in problems[field]


def test_run_study_stops_before_any_stage_on_a_misspelt_sampler(tmp_path: Path):
    """The sampler is used by the experimental stage, after every control is trained; the check comes first."""
    from taskscope.pipeline.run import run_study

    data = _with(TINY, "instruction_tuning.sampler", "uniformm") | {"output_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"instruction_tuning\.sampler: unknown sampler 'uniformm'; did you mean"):
        run_study(config_from_dict(data))
    assert list(tmp_path.iterdir()) == []  # no run folder, no study.yaml, no trained control


def test_validate_study_lists_every_problem_at_once():
    data = _with(_with(TINY, "model", "tiny:lama"), "similarity.kernels", ["lineer"])
    with pytest.raises(ConfigError) as info:
        validate_study(config_from_dict(data), source="x.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid study config x.yaml:" and len(lines) == 3


# ---------------------------------------------------------------- the CLI
def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_validate_prints_one_line_per_problem_with_file_and_field(tmp_path: Path):
    path = _write(tmp_path, _with(_with(TINY, "model", "tiny:lama"), "instruction_tuning.sampler", "proportionl"))
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith("error: ") and str(path) in line for line in lines), lines
    assert "model: unknown tiny architecture 'lama'" in result.output
    assert "instruction_tuning.sampler" in result.output and "Traceback" not in result.output


def test_config_validate_accepts_a_good_config_and_a_preset(tmp_path: Path):
    result = runner.invoke(app, ["config", "validate", str(_write(tmp_path, TINY))])
    assert result.exit_code == 0 and "valid mossa study config" in result.output
    result = runner.invoke(app, ["config", "validate", "transfer_tiny"])
    assert result.exit_code == 0 and "valid transfer study config" in result.output


def test_pydantic_errors_are_one_line_each_too(tmp_path: Path):
    path = _write(tmp_path, _with(_with(TINY, "tasks.n_inputs", 1), "name", "../../x"))
    result = runner.invoke(app, ["config", "validate", str(path)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 2
    assert any("tasks.n_inputs" in line for line in lines) and any(": name: " in line for line in lines)


def test_run_prints_one_line_and_debug_shows_the_traceback(tmp_path: Path):
    path = _write(tmp_path, _with(TINY, "model", "tiny:lama") | {"output_dir": str(tmp_path / "runs")})
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        f"error: invalid study config {path}: model: unknown tiny architecture 'lama' in 'tiny:lama'; "
        "did you mean 'llama'?"]
    result = runner.invoke(app, ["--debug", "run", str(path)])
    assert isinstance(result.exception, ConfigError)
    assert not (tmp_path / "runs").exists()


def test_run_dry_run_checks_and_runs_nothing(tmp_path: Path):
    path = _write(tmp_path, TINY | {"output_dir": str(tmp_path / "runs")})
    result = runner.invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0 and "is valid; nothing was run" in result.output
    assert not (tmp_path / "runs").exists()


def test_an_internal_error_says_how_to_see_the_traceback(monkeypatch, tmp_path: Path):
    import taskscope.pipeline.validate as validate

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(validate, "check_study", broken)
    result = runner.invoke(app, ["config", "validate", str(_write(tmp_path, TINY))])
    assert result.exit_code == 1 and "error: boom (RuntimeError; rerun with --debug for the traceback)" in result.output


def test_a_single_bad_sni_file_names_its_location_once(write_sni, tmp_path: Path):
    path = write_sni("task9_cut", text='{"Definition": "x", "Inst')
    for spec in (f"sni:{path}", f"sni:{path.parent}"):
        result = runner.invoke(app, ["tasks", "list", spec])
        assert result.exit_code == 1
        assert result.output.count(str(path)) == 1, result.output
        assert result.output.count("(file ") == 1 and "line 1" in result.output


@pytest.mark.parametrize(("data", "line"), [
    ({"control_training": {"samplr": "uniform"}}, "control_training.samplr: Extra inputs are not permitted; "
                                                  "did you mean 'sampler'?"),
    ({"tasks": {"n_input": 8}}, "tasks.n_input: Extra inputs are not permitted; did you mean 'n_inputs'?"),
])
def test_a_misspelt_key_gets_a_did_you_mean(data, line):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "x.yaml")
    assert f"  {line}" in str(info.value).splitlines()


def test_validating_a_mossa_study_reads_its_task_source_once(monkeypatch):
    import taskscope.tasks as tasks_package
    from taskscope.pipeline import load_config
    from taskscope.pipeline.validate import validate_study

    calls = []
    real = tasks_package.load_suite

    def counting(spec, **options):
        calls.append(spec)
        return real(spec, **options)

    monkeypatch.setattr(tasks_package, "load_suite", counting)
    config = load_config("tiny")
    validate_study(config)
    assert calls == [config.tasks.source]
