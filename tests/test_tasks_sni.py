"""The sni: source on the real sample (checked against INDEX.tsv) and on broken files written here."""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from pathlib import Path

import pytest

from taskscope.tasks import TaskError, load_suite
from taskscope.tasks.sni import HELDOUT_CATEGORIES, PRESETS, load_sni, read_sni_task


def test_every_real_file_matches_the_index(sni_sample: Path) -> None:
    with open(sni_sample / "INDEX.tsv", newline="") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}
    suite = load_suite(f"sni:{sni_sample}")
    assert sorted(suite.names) == sorted(rows)
    for task in suite:
        row = rows[task.name]
        assert list(task.clusters) == row["categories"].split(";"), task.name
        assert list(task.domains) == [d for d in row["domains"].split(";") if d], task.name
        assert task.n_instances == int(row["n_instances"]), task.name
        assert task.metadata["split"] == row["split"], task.name
        assert task.definition.strip() and task.positive_examples
        assert all(inst.outputs for inst in task.instances)
        assert len({inst.id for inst in task.instances}) == task.n_instances


def test_real_ids_are_kept_or_derived_from_name_and_index(sni_sample: Path) -> None:
    suite = load_suite(f"sni:{sni_sample}", tasks=["task196_sentiment140_answer_generation", "task288_gigaword_summarization"])
    raw = json.loads((sni_sample / "task196_sentiment140_answer_generation.json").read_text())
    assert suite.tasks[0].instances[0].id == raw["Instances"][0]["id"]
    assert [i.id for i in suite.tasks[1].instances[:2]] == ["task288_gigaword_summarization-0", "task288_gigaword_summarization-1"]


def test_schema_variants_string_or_list_and_missing_keys(write_sni, sni_data) -> None:
    path = write_sni("task1_str", sni_data(Definition="Label it", Categories="Sentiment Analysis", Domains=None,
                                           Source=None, Input_language=None, Instances=[{"input": "x", "output": "y"}]))
    task = read_sni_task(path)
    assert task.definition == "Label it"
    assert task.clusters == ("Sentiment Analysis",)
    assert task.domains == () and task.sources == () and task.input_language == ()
    assert task.instances[0].outputs == ("y",)
    listed = read_sni_task(write_sni("task2_list", sni_data(Definition=["First def", "Second def"])))
    assert listed.definition == "First def"
    assert listed.metadata["definitions"] == ["First def", "Second def"]
    assert listed.instances[1].outputs == ("label1", "alt1")
    assert listed.positive_examples[0].explanation == "Winning is good"
    assert listed.negative_examples[0].output == "sad"
    assert listed.metadata["contributors"] == ["A. Writer"]


def test_truncated_json_names_file_and_task(write_sni, sni_data) -> None:
    text = json.dumps(sni_data())
    path = write_sni("task9_cut", text=text[: len(text) // 2])
    with pytest.raises(TaskError, match="malformed or truncated JSON at line 1") as info:
        read_sni_task(path)
    assert (info.value.file, info.value.task, info.value.field) == (str(path), "task9_cut", "json")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"Definition": None}, "Definition", "missing required key 'Definition'"),
        ({"Instances": None}, "Instances", "missing required key 'Instances'"),
        ({"Instances": []}, "Instances", "empty instance list"),
        ({"Instances": [{"input": "x"}]}, "Instances[0].output", "no 'output'"),
        ({"Instances": [{"input": "x", "output": []}]}, "Instances[0].output", "empty output list"),
        ({"Categories": 3}, "Categories", "string or a list"),
        ({"Instances": [{"id": "a", "input": "x", "output": ["y"]}] * 2}, "Instances[1].id", "duplicate"),
    ],
)
def test_bad_fields_name_the_field(write_sni, sni_data, overrides, field, message) -> None:
    path = write_sni("task5_bad", sni_data(**overrides))
    with pytest.raises(TaskError, match=message) as info:
        read_sni_task(path)
    assert (info.value.task, info.value.field) == ("task5_bad", field)
    assert str(path) in str(info.value)


def test_bulk_load_reports_all_bad_files_at_once_or_skips_them(write_sni, sni_data, tmp_path) -> None:
    write_sni("task1_good")
    write_sni("task2_cut", text='{"Definition": "x", "Inst')
    write_sni("task3_empty", sni_data(Instances=[]))
    with pytest.raises(TaskError) as info:
        load_suite(f"sni:{tmp_path / 'sni'}")
    text = str(info.value)
    assert "2 bad SNI task file(s) of 3" in text and "task2_cut" in text and "task3_empty" in text
    with pytest.warns(UserWarning, match="skipped 2 bad") as record:
        suite = load_suite(f"sni:{tmp_path / 'sni'}", skip_bad=True)
    assert "task2_cut" in str(record[0].message) and "task3_empty" in str(record[0].message)
    assert suite.names == ["task1_good"]


def test_non_english_is_dropped_in_bulk_and_an_error_when_asked_for(write_sni, sni_data, tmp_path) -> None:
    write_sni("task1_en")
    write_sni("task2_fr", sni_data(Input_language=["French"]))
    folder = tmp_path / "sni"
    assert load_suite(f"sni:{folder}").names == ["task1_en"]
    assert load_suite(f"sni:{folder}", english_only=False).names == ["task1_en", "task2_fr"]
    with pytest.raises(TaskError, match="not English") as info:
        load_suite(f"sni:{folder}", tasks=["task2_fr"])
    assert (info.value.task, info.value.field) == ("task2_fr", "Input_language")
    with pytest.raises(TaskError, match="no task file") as missing:
        load_suite(f"sni:{folder}", tasks=["task404"])
    assert missing.value.task == "task404"


def test_exclusion_filters_and_minimum_instances(write_sni, sni_data, tmp_path) -> None:
    write_sni("task1_keep", sni_data(n_instances=5))
    write_sni("task2_cat", sni_data(Categories=["Textual Entailment"]))
    write_sni("task3_subcat", sni_data(Categories=["Reasoning -> Commonsense Reasoning"]))
    write_sni("task4_dom", sni_data(Domains=["News"]))
    write_sni("task5_src", sni_data(Source=["adversarial_qa (https://example.org)"]))
    write_sni("task6_small", sni_data(n_instances=2))
    folder = f"sni:{tmp_path / 'sni'}"
    assert len(load_suite(folder)) == 6
    kept = load_suite(folder, exclude_categories=["Textual Entailment", "Reasoning"], exclude_domains=["News"],
                      exclude_sources=["adversarial_qa"], min_instances=3)
    assert kept.names == ["task1_keep"]
    preset = load_suite(folder, preset="mueller")
    # task2_cat is unseen (Textual Entailment) but has 3 <= 140 instances; task5_src's source is adversarial
    assert preset.names == ["task1_keep", "task3_subcat", "task4_dom", "task6_small"]
    assert PRESETS["mueller"].unseen_categories == HELDOUT_CATEGORIES
    with pytest.raises(TaskError, match="unknown SNI preset"):
        load_suite(folder, preset="nope")


def test_checkout_layout_marks_seen_and_unseen(write_sni, tmp_path) -> None:
    root = tmp_path / "natural-instructions"
    for name in ("task1_a", "task2_b", "task3_c"):
        write_sni(name, folder=root / "tasks")
    (root / "tasks" / "README.md").write_text("not a task")
    split_dir = root / "splits" / "default"
    split_dir.mkdir(parents=True)
    (split_dir / "train_tasks.txt").write_text("task1_a\n")
    (split_dir / "test_tasks.txt").write_text("task2_b\n")
    suite = load_suite(f"sni:{root}")
    assert [t.metadata.get("split") for t in suite] == ["seen", "unseen", None]


def test_instance_cap_is_a_seeded_draw_not_file_order(write_sni, sni_data, tmp_path) -> None:
    write_sni("task1_big", sni_data(n_instances=40))
    suite = load_sni(str(tmp_path / "sni"), n_instances=10, seed=3)
    ids = [inst.id for inst in suite.tasks[0].instances]

    def key(i: str) -> bytes:
        return hashlib.blake2b(f"3\x1ftask1_big\x1f{i}".encode(), digest_size=8).digest()

    expected = sorted(sorted((f"task1_big-{i}" for i in range(40)), key=key)[:10], key=lambda s: int(s.split("-")[1]))
    assert ids == expected
    assert ids != [f"task1_big-{i}" for i in range(10)]


def test_unknown_prefix_and_missing_path() -> None:
    with pytest.raises(TaskError, match="unknown task source 'nope'") as info:
        load_suite("nope:/x")
    assert info.value.field == "spec"
    with pytest.raises(TaskError, match="does not exist"):
        load_suite("sni:/definitely/not/here")
    with pytest.raises(TaskError, match="needs a path"):
        load_suite("sni")


def test_no_warning_for_a_clean_load(write_sni, tmp_path) -> None:
    write_sni("task1_good")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_suite(f"sni:{tmp_path / 'sni'}").names == ["task1_good"]


# ---------------------------------------------------------------- the paper's selection (issue 16)
def _mueller_folder(write_sni, sni_data, tmp_path):
    """One task per filter of the mueller preset, plus SNI split lists that disagree with the categories."""
    big = 150
    tasks = {
        "task1_seen": sni_data(n_instances=5),
        "task2_unseen_big": sni_data(n_instances=big, Categories=["Textual Entailment"]),
        "task3_unseen_small": sni_data(n_instances=140, Categories=["Title Generation"]),
        "task4_twitter_seen": sni_data(Domains=["Social Media -> Twitter"]),
        "task5_twitter_unseen": sni_data(n_instances=big, Categories=["Coreference Resolution"],
                                         Domains=["Social Media -> Twitter"]),
        "task6_paws_seen": sni_data(Source=["paws"]),
        "task7_hellaswag_seen": sni_data(Source=["HellaSwag (https://rowanzellers.com/hellaswag)"]),
        "task8_anli_unseen": sni_data(n_instances=big, Categories=["Textual Entailment"], Source=["anli"]),
        "task9_synthetic": sni_data(Source=["synthetic"]),
        "task10_french": sni_data(Input_language=["French"]),
        "task11_small_seen": sni_data(n_instances=2),
        "task12_codah_hans": sni_data(Source=["codah", "hans"]),
    }
    for name, data in tasks.items():
        write_sni(name, data)
    folder = tmp_path / "sni"
    (folder / "train_tasks.txt").write_text("task1_seen\ntask2_unseen_big\n")
    (folder / "test_tasks.txt").write_text("task3_unseen_small\n")
    return folder


def test_mueller_preset_applies_every_filter_by_role(write_sni, sni_data, tmp_path) -> None:
    """Today's preset removed every held-out category from the whole suite (no unseen tasks), kept Twitter,
    paws, hans, hellaswag and codah, had no synthetic filter and no unseen-only size rule."""
    from taskscope.tasks.splits import split_suite

    folder = _mueller_folder(write_sni, sni_data, tmp_path)
    suite = load_suite(f"sni:{folder}", preset="mueller")
    split = split_suite(suite)
    assert split.unseen.names == ["task2_unseen_big", "task5_twitter_unseen", "task8_anli_unseen"]
    assert split.seen.names == ["task11_small_seen", "task1_seen"]  # file order of the glob; small seen tasks stay


def test_selection_report_counts_beside_the_paper_and_lists_every_difference(write_sni, sni_data, tmp_path) -> None:
    from taskscope.tasks.sni import PAPER_COUNTS, selection_report

    report = selection_report(_mueller_folder(write_sni, sni_data, tmp_path))
    assert report.counts == {"seen": 2, "unseen": 3, "seen_categories": 1, "unseen_categories": 2}
    assert report.paper == PAPER_COUNTS == {"seen": 619, "unseen": 93, "seen_categories": 58, "unseen_categories": 11}
    why = {d["task"]: d["field"] for d in report.dropped}
    assert why == {"task3_unseen_small": "Instances", "task4_twitter_seen": "Domains", "task6_paws_seen": "Source",
                   "task7_hellaswag_seen": "Source", "task9_synthetic": "Source", "task10_french": "Input_language",
                   "task12_codah_hans": "Source"}
    assert report.moved == ({"task": "task2_unseen_big", "split_list": "seen", "role": "unseen"},)
    text = report.text()
    assert "619" in text and "task4_twitter_seen [seen] Domains" in text and "1 of the paper's 12" in text


def test_selection_report_runs_on_the_shared_sni_sample(sni_sample) -> None:
    from taskscope.tasks.sni import selection_report

    report = selection_report(sni_sample)
    assert report.counts["seen"] + report.counts["unseen"] + len(report.dropped) == 20
    dropped = {d["task"]: d["reason"] for d in report.dropped}
    assert "Twitter" in dropped["task196_sentiment140_answer_generation"]
    assert "paws" in dropped["task400_paws_paraphrase_classification"]
    # the sample's only evaluation-category task (Textual Entailment) is truncated to 69 instances
    assert "69 instances" in dropped["task068_abductivenli_incorrect_answer_generation"]
