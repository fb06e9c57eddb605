"""The ``jsonl:`` and ``hf:`` task sources: the round trip through ``tasks export``, field mappings, early stops
at ``max_records`` and one-line errors naming the file, record and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taskscope.cli import app
from taskscope.tasks import PromptFormat, TaskError, format_task, load_suite
from taskscope.tasks.formats import PromptReuseWarning

runner = CliRunner()


def _templated_spec(tmp_path: Path) -> Path:
    records = tmp_path / "pairs.jsonl"
    records.write_text("".join(json.dumps({"a": i, "b": i % 3, "label": str(i % 2), "uid": f"p{i}"}) + "\n"
                               for i in range(7)))
    spec = {"name": "mini", "datasets": [
        {"name": "parity", "cluster": "arith", "records": "pairs.jsonl", "id_field": "uid",
         "definition": "Say whether a number is even.",
         "templates": [{"input": "Is {a} odd?", "output": "{label}", "verbalizer": {"label": {"0": "no", "1": "yes"}}},
                       {"input": "{a} - odd or even?", "output": "{label}",
                        "verbalizer": {"label": {"0": "even", "1": "odd"}}}]},
        {"name": "mod3", "cluster": "arith", "records": "pairs.jsonl",
         "templates": [{"input": "{a} mod 3 = ?", "output": "{b}"}]},
    ]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_round_trip_tasks_export_to_jsonl(tmp_path: Path) -> None:
    """export a suite -> jsonl: -> the same tasks (order, clusters), instances (ids, targets) and prompts;
    exporting the read-back suite with kind 'prompt' rewrites the same records."""
    spec = f"templated:{_templated_spec(tmp_path)}"
    exported = tmp_path / "export.jsonl"
    result = runner.invoke(app, ["tasks", "export", spec, str(exported), "--template-policy", "cycle"])
    assert result.exit_code == 0, result.output
    original = load_suite(spec)
    fmt = PromptFormat(template_policy="cycle")

    back = load_suite(f"jsonl:{exported}")
    assert back.names == original.names
    for task in original:
        read = back[task.name]
        assert read.cluster == task.cluster
        assert [i.id for i in read.instances] == [i.id for i in task.instances]
        wanted = format_task(task, None, fmt)
        got = format_task(read, None, PromptFormat(kind="prompt"))
        assert [(e.prompt, e.targets) for e in got] == [(e.prompt, e.targets) for e in wanted]
        assert [i.fields["template_index"] for i in read.instances] == [e.template_index for e in wanted]
        assert {i.fields["format"] for i in read.instances} == {"definition_exemplars"}
    assert {e.template_index for e in format_task(original["parity"], None, fmt)} == {0, 1}  # the cycle was used

    again = tmp_path / "again.jsonl"
    result = runner.invoke(app, ["tasks", "export", f"jsonl:{exported}", str(again), "--format", "prompt"])
    assert result.exit_code == 0, result.output
    strip = lambda rows: [{k: v for k, v in row.items() if k not in ("format", "template_index")} for row in rows]  # noqa: E731
    assert strip(_read(again)) == strip(_read(exported))


def test_exported_prompts_formatted_again_warn(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"task": "t", "prompt": "Q: 1+1?\nA: ", "targets": ["2"]}) + "\n")
    task = load_suite(f"jsonl:{path}")["t"]
    with pytest.warns(PromptReuseWarning, match="kind 'prompt'"):
        wrapped = format_task(task, None, PromptFormat(kind="none"))
    assert wrapped[0].prompt != "Q: 1+1?\nA: "
    assert format_task(task, None, PromptFormat(kind="prompt"))[0].prompt == "Q: 1+1?\nA: "


def test_jsonl_field_mapping_default_task_and_plain_inputs(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    rows = [{"q": "What is 2+2", "a": 4, "n": "x1"}, {"q": "Capital of France", "a": ["Paris", "paris"], "n": "x2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    suite = load_suite(f"jsonl:{path}", fields={"input": "q", "targets": "a", "instance_id": "n"},
                       definition="Answer the question.")
    task = suite["qa"]  # the file's stem names the task of records without a task field
    assert [i.id for i in task.instances] == ["x1", "x2"]
    assert task.instances[0].outputs == ("4",) and task.instances[1].outputs == ("Paris", "paris")
    prompt = format_task(task, None, PromptFormat(kind="definition"))[0].prompt
    assert "Answer the question." in prompt and "What is 2+2" in prompt and not task.metadata["prompts"]


def test_jsonl_max_records_stops_reading(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    good = [json.dumps({"task": "t", "input": f"x{i}", "targets": "y"}) for i in range(3)]
    path.write_text("\n".join([*good, "{not json"]) + "\n")
    assert load_suite(f"jsonl:{path}", max_records=3)["t"].n_instances == 3
    with pytest.raises(TaskError, match="line 4: malformed JSON") as err:
        load_suite(f"jsonl:{path}")
    assert err.value.file == str(path) and "\n" not in str(err.value)


@pytest.mark.parametrize(("line", "message", "field"), [
    ({"task": "t", "input": "x"}, "line 2: record has no 'targets'", "targets"),
    ({"task": "t", "input": "x", "targets": []}, "line 2: 'targets' must be a non-empty", "targets"),
    ({"task": "t", "input": 3, "targets": "y"}, "line 2: 'input' must be a string", "input"),
    ({"task": "t", "targets": "y"}, "line 2: record has neither 'prompt' nor 'input'", "input"),
    ({"task": "t", "instance_id": "a", "input": "x", "targets": "y"}, "line 2: duplicate instance id 'a'",
     "instance_id"),
    ({"task": "../up", "input": "x", "targets": "y"}, "line 2: task name '../up'", "task"),
    ({"task": "t", "prompt": "x", "targets": "y"}, "line 2: task mixes records", "prompt"),
    ([1, 2], "line 2: a record must be an object", None),
])
def test_jsonl_bad_records_name_file_line_and_field(tmp_path: Path, line: object, message: str,
                                                    field: str | None) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"task": "t", "instance_id": "a", "input": "ok", "targets": "y"}) + "\n"
                    + json.dumps(line) + "\n")
    with pytest.raises(TaskError, match=message) as err:
        load_suite(f"jsonl:{path}")
    assert err.value.file == str(path) and err.value.field == field and "\n" not in str(err.value)
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        suite = load_suite(f"jsonl:{path}", skip_bad=True)
    assert suite["t"].n_instances == 1 and suite.dropped[0].records == ("line 2",)


def test_jsonl_missing_file_and_unknown_mapping_key(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="JSONL file not found"):
        load_suite(f"jsonl:{tmp_path / 'nope.jsonl'}")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"task": "t", "input": "x", "targets": "y"}) + "\n")
    with pytest.raises(TaskError, match="bad field mapping") as err:
        load_suite(f"jsonl:{path}", fields={"answer": "a"})
    assert err.value.field == "fields.answer"


# --- hf: on a local dataset folder, offline ---------------------------------------------------------------


def _private_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with the datasets cache inside tmp_path (datasets reads its config once, at import)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local dataset folder with two configs; the Hugging Face cache inside tmp_path, offline."""
    _private_hf_cache(tmp_path, monkeypatch)
    folder = tmp_path / "my_dataset"
    (folder / "questions").mkdir(parents=True)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: questions\n  data_files:\n  - split: train\n    path: questions/train.jsonl\n"
        "  - split: test\n    path: questions/test.jsonl\n"
        "- config_name: sums\n  data_files:\n  - split: train\n    path: sums.jsonl\n---\n")
    (folder / "questions" / "train.jsonl").write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": f"a{i}", "kind": "qa"}) + "\n" for i in range(5)))
    (folder / "questions" / "test.jsonl").write_text(json.dumps({"question": "tq", "answer": "ta", "kind": "qa"}) + "\n")
    (folder / "sums.jsonl").write_text(
        "".join(json.dumps({"task": "sum", "input": f"{i}+{i}", "targets": [str(2 * i)]}) + "\n" for i in range(4)))
    return folder


def test_hf_local_folder_config_split_and_fields(hf_offline: Path) -> None:
    fields = {"input": "question", "targets": "answer"}
    suite = load_suite(f"hf:{hf_offline}", config="questions", fields=fields, definition="Answer.")
    task = suite["my_dataset"]
    assert [i.input for i in task.instances] == [f"q{i}" for i in range(5)]
    assert task.instances[2].outputs == ("a2",) and task.instances[2].fields == {"kind": "qa"}
    assert task.definition == "Answer." and task.source == "hf"
    test = load_suite(f"hf:{hf_offline}", config="questions", split="test", fields=fields, task="qa")["qa"]
    assert [i.input for i in test.instances] == ["tq"]
    sums = load_suite(f"hf:{hf_offline}", config="sums")  # the default field names: task / input / targets
    assert sums.names == ["sum"] and sums["sum"].instances[3].outputs == ("6",)


def test_hf_data_files_and_max_records_stops_reading(hf_offline: Path) -> None:
    """With max_records the stream never opens the second, broken file; without it the whole split is read."""
    broken = hf_offline / "broken.jsonl"
    broken.write_text("{this is not json\n")
    files = [str(hf_offline / "questions" / "train.jsonl"), str(broken)]
    fields = {"input": "question", "targets": "answer"}
    suite = load_suite("hf:json", data_files=files, fields=fields, max_records=3, task="qa")
    assert [i.input for i in suite["qa"].instances] == ["q0", "q1", "q2"]
    with pytest.raises(TaskError, match="Hugging Face dataset 'json'") as err:
        load_suite("hf:json", data_files=files, fields=fields, task="qa")
    assert err.value.field == "records" and "\n" not in str(err.value)


def test_hf_revision_reaches_load_dataset(hf_offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    seen = {}
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **{**kwargs, "revision": None})

    monkeypatch.setattr(datasets, "load_dataset", spy)
    load_suite(f"hf:{hf_offline}", config="sums", revision="v1.0", max_records=1)
    assert seen["revision"] == "v1.0" and seen["streaming"] is True


def test_hf_class_labels_become_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    _private_hf_cache(tmp_path, monkeypatch)
    data = datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]},
                                      features=datasets.Features({"text": datasets.Value("string"),
                                                                  "label": datasets.ClassLabel(names=["neg", "pos"])}))
    (tmp_path / "parquet").mkdir()
    data.to_parquet(str(tmp_path / "parquet" / "train.parquet"))
    suite = load_suite(f"hf:{tmp_path / 'parquet'}", fields={"input": "text", "targets": "label"}, task="sentiment")
    assert [i.outputs for i in suite["sentiment"].instances] == [("pos",), ("neg",)]


def test_hf_errors_are_one_line(hf_offline: Path) -> None:
    with pytest.raises(TaskError, match="config 'nope'") as err:
        load_suite(f"hf:{hf_offline}", config="nope")
    assert "\n" not in str(err.value) and err.value.field == "records"
    with pytest.raises(TaskError, match="row 0: record has no 'targets'"):
        load_suite(f"hf:{hf_offline}", config="questions", fields={"input": "question"})


def test_templated_hf_records_stream_with_max_records(hf_offline: Path, tmp_path: Path) -> None:
    spec = {"datasets": [{"name": "qa", "records": {"hf": str(hf_offline), "config": "questions", "revision": None},
                          "max_records": 2, "templates": [{"input": "Q: {question}", "output": "{answer}"}]}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    task = load_suite(f"templated:{path}")["qa"]
    assert [i.input for i in task.instances] == ["Q: q0", "Q: q1"]


def test_hf_max_records_falls_back_to_a_full_read_when_streaming_fails(hf_offline: Path, monkeypatch, caplog) -> None:
    import datasets

    real = datasets.load_dataset

    def no_stream(*args, **kwargs):
        if kwargs.get("streaming"):
            raise ConnectionError("streaming needs the hub")
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", no_stream)
    with caplog.at_level("INFO", logger="taskscope.tasks"):
        suite = load_suite(f"hf:{hf_offline}", config="sums", max_records=2)
    assert [i.input for i in suite["sum"].instances] == ["0+0", "1+1"]
    assert "could not be streamed (ConnectionError: streaming needs the hub)" in caplog.text
