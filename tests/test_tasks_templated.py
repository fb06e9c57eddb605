"""The templated: source with JSONL / CSV / parquet records written here, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from taskscope.tasks import PromptFormat, TaskError, format_task, load_suite

ROWS = [{"uid": f"u{i}", "text": f"review {i}", "label": i % 2, "refs": [f"r{i}", f"s{i}"]} for i in range(6)]
TEMPLATES = [
    {"input": "Review: {text}\nPositive or negative?", "output": "{label}",
     "verbalizer": {"label": {"0": "negative", "1": "positive"}}},
    {"input": "{text}\nDid they like it?", "output": "{label}", "verbalizer": {"label": {"0": "no", "1": "yes"}}},
    {"input": "Paraphrase: {text}", "outputs_field": "refs"},
]


def _write_spec(tmp_path: Path, datasets: list[dict], suffix: str = ".yaml") -> Path:
    path = tmp_path / f"spec{suffix}"
    body = {"name": "toy", "datasets": datasets}
    path.write_text(yaml.safe_dump(body) if suffix == ".yaml" else json.dumps(body))
    return path


def test_jsonl_csv_parquet_records_with_templates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    pd.DataFrame([{k: v for k, v in r.items() if k != "refs"} for r in ROWS]).to_csv(data / "rows.csv", index=False)
    pd.DataFrame([{k: v for k, v in r.items() if k != "refs"} for r in ROWS]).to_parquet(data / "rows.parquet")
    spec = _write_spec(tmp_path, [
        {"name": "sent_jsonl", "cluster": "sentiment", "records": "data/rows.jsonl", "templates": TEMPLATES,
         "definition": "Classify the review", "id_field": "uid"},
        {"name": "sent_csv", "clusters": ["sentiment", "classification"], "records": "data/rows.csv",
         "templates": TEMPLATES[:2], "max_records": 4},
        {"name": "sent_parquet", "cluster": "sentiment", "records": "data/rows.parquet", "templates": TEMPLATES[:2]},
    ])
    suite = load_suite(f"templated:{spec}")
    assert suite.name == "toy" and suite.names == ["sent_jsonl", "sent_csv", "sent_parquet"]
    jsonl, csv_task, parquet = suite.tasks
    assert jsonl.cluster == "sentiment" and jsonl.definition == "Classify the review" and len(jsonl.templates) == 3
    assert [i.id for i in jsonl.instances] == [r["uid"] for r in ROWS]
    assert jsonl.instances[1].input == "Review: review 1\nPositive or negative?"
    assert jsonl.instances[1].outputs == ("positive",)
    assert jsonl.render(jsonl.instances[1], 1).outputs == ("yes",)
    assert jsonl.render(jsonl.instances[3], 2).outputs == ("r3", "s3")
    assert csv_task.clusters == ("sentiment", "classification") and csv_task.n_instances == 4
    assert csv_task.instances[0].id == "sent_csv-0"
    for task in (csv_task, parquet):
        assert [i.outputs for i in task.instances[:2]] == [("negative",), ("positive",)]
    cycled = format_task(jsonl, None, PromptFormat(kind="none", template_policy="cycle"))
    assert [e.template_index for e in cycled] == [0, 1, 2, 0, 1, 2]
    assert cycled[4].prompt.endswith("Input: review 4\nDid they like it?\nOutput: ")


def test_json_spec_and_instance_cap(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    spec = _write_spec(tmp_path, [{"name": "t", "cluster": "c", "records": "rows.json", "templates": TEMPLATES}], ".json")
    suite = load_suite(f"templated:{spec}", n_instances=3, seed=1)
    assert suite.tasks[0].n_instances == 3
    assert suite == load_suite(f"templated:{spec}", n_instances=3, seed=1)


def test_unknown_template_field_names_file_task_field(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    bad = [TEMPLATES[0], {"input": "{text} {sentence}", "output": "{label}"}]
    spec = _write_spec(tmp_path, [{"name": "broken", "cluster": "c", "records": "rows.jsonl", "templates": bad}])
    with pytest.raises(TaskError, match="template 1 names unknown field 'sentence'") as info:
        load_suite(f"templated:{spec}")
    assert (info.value.file, info.value.task, info.value.field) == (str(spec), "broken", "templates[1].sentence")


def test_a_later_record_missing_a_field_is_reported_with_its_index(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": 0}, {"label": 1}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = _write_spec(tmp_path, [{"name": "gap", "records": "rows.jsonl", "templates": TEMPLATES[:1]}])
    with pytest.raises(TaskError, match="record 1") as info:
        load_suite(f"templated:{spec}")
    assert (info.value.task, info.value.field) == ("gap", "text")


@pytest.mark.parametrize(
    ("dataset", "message", "field"),
    [
        ({"name": "t", "records": "missing.jsonl", "templates": TEMPLATES}, "records file not found", "records"),
        ({"name": "t", "records": "rows.txt", "templates": TEMPLATES}, "unsupported records format", "records"),
        ({"name": "t", "records": "rows.jsonl", "templates": []}, "invalid templated spec", "datasets.0.templates"),
        ({"name": "t", "records": "rows.jsonl", "templates": TEMPLATES, "colour": "red"}, "invalid templated spec",
         "datasets.0.colour"),
        ({"name": "t", "records": "rows.jsonl", "templates": TEMPLATES, "id_field": "nope"}, "id_field", "id_field"),
        ({"name": "t", "records": "empty.jsonl", "templates": TEMPLATES}, "no records", "records"),
    ],
)
def test_bad_specs(tmp_path: Path, dataset: dict, message: str, field: str) -> None:
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    (tmp_path / "rows.txt").write_text("x")
    (tmp_path / "empty.jsonl").write_text("")
    spec = _write_spec(tmp_path, [dataset])
    with pytest.raises(TaskError, match=message) as info:
        load_suite(f"templated:{spec}")
    assert info.value.field == field and info.value.task == "t"


def test_malformed_yaml_and_truncated_jsonl(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("datasets: [ {name: x\n")
    with pytest.raises(TaskError, match="malformed YAML") as info:
        load_suite(f"templated:{spec}")
    assert info.value.file == str(spec)
    (tmp_path / "rows.jsonl").write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1])[:10])
    good = _write_spec(tmp_path, [{"name": "t", "records": "rows.jsonl", "templates": TEMPLATES}])
    with pytest.raises(TaskError, match="cannot read records") as info:
        load_suite(f"templated:{good}")
    assert info.value.task == "t" and info.value.field == "records"
