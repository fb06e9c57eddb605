"""`taskscope tasks list|show|export` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taskscope.cli import app
from taskscope.tasks import PromptFormat, format_task, load_suite

runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path) -> str:
    rows = [{"text": f"item {i}", "label": i % 2} for i in range(5)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    templates = [{"input": "Is [{text}] odd?", "output": "{label}", "verbalizer": {"label": {"0": "no", "1": "yes"}}},
                 {"input": "{text}: odd or even?", "output": "{label}", "verbalizer": {"label": {"0": "even", "1": "odd"}}}]
    body = {"datasets": [{"name": "parity", "cluster": "arithmetic", "records": "rows.jsonl", "templates": templates,
                          "definition": "Tell whether the number is odd"},
                         {"name": "parity2", "cluster": "logic", "records": "rows.jsonl", "templates": templates}]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(body))
    return f"templated:{tmp_path / 'spec.yaml'}"


def test_list_json_has_one_object_per_task(spec: str) -> None:
    result = runner.invoke(app, ["tasks", "list", spec, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["name"], r["cluster"], r["categories"], r["n_instances"]) for r in rows] == [
        ("parity", "arithmetic", ["arithmetic"], 5), ("parity2", "logic", ["logic"], 5)]


def test_list_table_and_instance_cap(spec: str) -> None:
    result = runner.invoke(app, ["tasks", "list", spec, "--n-instances", "2"])
    assert result.exit_code == 0, result.output
    assert "parity2" in result.stdout and "arithmetic" in result.stdout
    rows = json.loads(runner.invoke(app, ["tasks", "list", spec, "--json", "--n-instances", "2"]).stdout)
    assert {r["n_instances"] for r in rows} == {2}


def test_show_prints_the_exact_prompts_and_targets(spec: str) -> None:
    result = runner.invoke(app, ["tasks", "show", spec, "parity", "--format", "definition", "--n", "2",
                                 "--template-policy", "cycle"])
    assert result.exit_code == 0, result.output
    task = load_suite(spec)["parity"]
    for example in format_task(task, task.instances[:2], PromptFormat(kind="definition", template_policy="cycle")):
        assert example.prompt.rstrip() in result.stdout  # brackets survive (no rich markup)
        assert repr(example.targets[0]) in result.stdout
    assert "Input: Is [item 0] odd?\nOutput: " in result.stdout and "item 1: odd or even?" in result.stdout


def test_show_with_tokenizer_marks_trained_tokens(spec: str, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["[UNK]", "</s>", "yes", "no", "Output:"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="</s>").save_pretrained(tmp_path / "tok")
    result = runner.invoke(app, ["tasks", "show", spec, "parity", "--n", "1", "--format", "none",
                                 "--tokenizer", str(tmp_path / "tok")], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    trained = [line for line in lines if line.rstrip("│ ").endswith("yes")]
    masked = [line for line in lines if line.rstrip("│ ").endswith("no")]
    assert len(trained) == 2 and "'no'" in trained[0] and "'</s>'" in trained[1]  # target "no", then EOS
    assert len(masked) > 3


def test_export_writes_every_formatted_instance(spec: str, tmp_path: Path) -> None:
    out = tmp_path / "out" / "all.jsonl"
    result = runner.invoke(app, ["tasks", "export", spec, str(out), "--format", "task_id"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    suite = load_suite(spec)
    expected = [ex for task in suite for ex in format_task(task, None, PromptFormat(kind="task_id"))]
    assert [(r["task"], r["instance_id"], r["prompt"], r["targets"]) for r in records] == [
        (e.task, e.instance_id, e.prompt, list(e.targets)) for e in expected]
    assert records[0]["cluster"] == "arithmetic" and records[0]["format"] == "task_id"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks", "list", "nope:x"], "unknown task source"),
        (["tasks", "show", "SPEC", "missing_task"], "no task 'missing_task'"),
        (["tasks", "show", "SPEC", "parity", "--format", "bogus"], "kind"),
    ],
)
def test_errors_exit_1_with_a_message(spec: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, [spec if a == "SPEC" else a for a in args])
    assert result.exit_code == 1
    assert message in result.output


def test_real_sni_list_and_skip_bad(sni_sample: Path) -> None:
    result = runner.invoke(app, ["tasks", "list", f"sni:{sni_sample}", "--json", "--skip-bad"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 20 and {r["split"] for r in rows} == {"seen", "unseen"}
