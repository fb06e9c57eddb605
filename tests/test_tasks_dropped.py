"""Item 8 of issue 12: every task or record a filter drops or a loader skips is warned about and counted
(``suite.dropped``); bad templated records are errors naming file, record, line and field unless skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from taskscope.cli import app
from taskscope.tasks import TaskError, load_suite

runner = CliRunner()
VERBALIZED = [{"input": "{text}", "output": "{label}", "verbalizer": {"label": {"0": "no", "1": "yes"}}}]


def test_a_non_english_sni_file_is_dropped_with_a_warning_and_counted(write_sni, sni_data, tmp_path: Path):
    write_sni("task1_en")
    write_sni("task2_fr", sni_data(Output_language=["French"]))
    with pytest.warns(UserWarning, match=r"dropped 1 of 2 task\(s\)") as record:
        suite = load_suite(f"sni:{tmp_path / 'sni'}")
    assert "task2_fr" in str(record[0].message) and "Output_language" in str(record[0].message)
    assert suite.names == ["task1_en"]
    summary = suite.dropped_summary()
    assert (summary["n_tasks"], summary["n_records"]) == (1, 0)
    assert summary["items"][0]["task"] == "task2_fr" and summary["items"][0]["field"] == "Output_language"
    assert summary["items"][0]["file"].endswith("task2_fr.json")
    assert suite.select(["task1_en"]).dropped == suite.dropped  # the record survives selection
    with pytest.raises(KeyError, match="the loader dropped it.*not English"):
        suite["task2_fr"]


def test_every_sni_file_is_either_kept_or_accounted_for(sni_sample):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        suite = load_suite(f"sni:{sni_sample}", preset="mueller", skip_bad=True)
    files = sorted(p.stem for p in Path(sni_sample).glob("*.json")) or sorted(
        p.stem for p in (Path(sni_sample) / "tasks").glob("*.json"))
    accounted = set(suite.names) | {d.task for d in suite.dropped}
    assert accounted == set(files) and not set(suite.names) & {d.task for d in suite.dropped}


def test_tasks_show_says_why_a_task_was_dropped(write_sni, sni_data, tmp_path: Path):
    write_sni("task1_en")
    write_sni("task2_fr", sni_data(Input_language=["French"]))
    result = runner.invoke(app, ["tasks", "show", f"sni:{tmp_path / 'sni'}", "task2_fr"])
    assert result.exit_code == 1
    assert "warning: the SNI filters dropped 1 of 2" in result.output
    assert "error: no task 'task2_fr'" in result.output and "not English" in result.output
    listing = runner.invoke(app, ["tasks", "list", f"sni:{tmp_path / 'sni'}"])
    assert listing.exit_code == 0 and "warning:" in listing.output and "task2_fr" in listing.output


def _spec(tmp_path: Path, records: str, templates=VERBALIZED) -> str:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"datasets": [{"name": "toy", "records": records, "templates": templates}]}))
    return f"templated:{spec}"


def test_an_unmapped_verbalizer_label_is_an_error_naming_the_record(tmp_path: Path):
    rows = [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c", "label": 2}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(TaskError) as info:
        load_suite(_spec(tmp_path, "rows.jsonl"))
    message = str(info.value)
    assert "record 2, line 3" in message and "'2'" in message and info.value.field == "label"
    assert info.value.file == str((tmp_path / "rows.jsonl").resolve())
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 record"):
        suite = load_suite(_spec(tmp_path, "rows.jsonl"), on_bad_record="skip")
    assert [i.outputs for i in suite["toy"].instances] == [("no",), ("yes",)]
    assert suite.dropped_summary()["n_records"] == 1 and suite.dropped[0].records == ("record 2, line 3",)


def test_a_later_template_is_checked_on_every_record_too(tmp_path: Path):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    templates = [{"input": "{text}", "output": "{label}"},
                 {"input": "{text}?", "output": "{label}", "verbalizer": {"label": {"x": "ex"}}}]
    with pytest.raises(TaskError, match="record 1, line 2.*'y'"):
        load_suite(_spec(tmp_path, "rows.jsonl", templates))


def test_a_csv_row_with_a_missing_value_is_an_error_naming_its_line(tmp_path: Path):
    pd.DataFrame([{"text": "a", "label": "0"}, {"text": "", "label": "1"}, {"text": "c", "label": ""}]).to_csv(
        tmp_path / "rows.csv", index=False)
    with pytest.raises(TaskError) as info:
        load_suite(_spec(tmp_path, "rows.csv"))
    assert "record 1, line 3" in str(info.value) and "no value" in str(info.value) and info.value.field == "text"
    with pytest.warns(UserWarning, match="skipped 2 of 3"):
        suite = load_suite(_spec(tmp_path, "rows.csv"), on_bad_record="skip")
    assert [i.input for i in suite["toy"].instances] == ["a"]
    assert suite.dropped[0].records == ("record 1, line 3", "record 2, line 4")


def test_skipping_every_record_is_still_an_error(tmp_path: Path):
    (tmp_path / "rows.jsonl").write_text(json.dumps({"text": "a", "label": 7}))
    with pytest.raises(TaskError, match="every record was skipped"):
        load_suite(_spec(tmp_path, "rows.jsonl"), on_bad_record="skip")
    with pytest.raises(TaskError, match="on_bad_record must be"):
        load_suite(_spec(tmp_path, "rows.jsonl"), on_bad_record="ignore")


def test_cli_skip_bad_skips_bad_templated_records_with_a_warning(tmp_path: Path):
    rows = [{"text": "a", "label": 0}, {"text": "b", "label": 5}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = _spec(tmp_path, "rows.jsonl")
    failed = runner.invoke(app, ["tasks", "list", spec])
    assert failed.exit_code == 1 and "record 1, line 2" in failed.output
    result = runner.invoke(app, ["tasks", "list", spec, "--json", "--skip-bad"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["n_instances"] == 1
    assert "warning: templated: skipped 1 of 2 record(s)" in result.output


def test_a_run_writes_what_the_loader_dropped_and_counts_it_in_the_manifest(write_sni, sni_data, tmp_path: Path,
                                                                             caplog):
    import logging
    import warnings

    from taskscope.pipeline import load_config, run_study
    from taskscope.studies.mossa.config import MossaConfig
    from taskscope.studies.mossa.stages import mossa_stages

    write_sni("task1_en", sni_data(n_instances=12))
    write_sni("task2_fr", sni_data(n_instances=12, Output_language=["French"]))
    config = load_config("tiny").model_dump(mode="json")
    config["tasks"] = {"source": f"sni:{tmp_path / 'sni'}", "n_inputs": 4, "n_train": 4}
    config["models"] = [{"name": "pretrained", "kind": "pretrained"},
                        {"name": "instruction_tuned", "kind": "multitask"}]
    tasks_stage = [stage for stage in mossa_stages() if stage.name == "tasks"]
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="taskscope.pipeline"):
        warnings.simplefilter("ignore", UserWarning)  # the loader's own warning is tested above
        run = run_study(MossaConfig.model_validate(config), tmp_path / "run", stages=tasks_stage)
    folder = run.run_dir / run.stages["tasks"]["folder"]
    recorded = json.loads((folder / "dropped.json").read_text())
    assert (recorded["n_tasks"], recorded["n_records"]) == (1, 0)
    assert recorded["items"][0]["task"] == "task2_fr" and recorded["items"][0]["field"] == "Output_language"
    assert set(json.loads((folder / "tasks.json").read_text())) == {"task1_en"}
    assert run.manifest["dropped"] == {"n_tasks": 1, "n_records": 0, "files": [f"{run.stages['tasks']['folder']}/dropped.json"]}
    assert any("dropped 1 task(s) and 0 record(s)" in r.getMessage() for r in caplog.records)
    # a clean source records an empty list, and the manifest says so
    (tmp_path / "sni" / "task2_fr.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clean = run_study(MossaConfig.model_validate(config), tmp_path / "run", stages=tasks_stage)
    assert clean.manifest["dropped"]["n_tasks"] == 0 and clean.stages["tasks"]["cached"] is False
