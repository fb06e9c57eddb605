"""SNI metrics: ROUGE-L values worked out by hand from the LCS definition, exact match, per-task/category tables."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.evaluate import (
    exact_match,
    normalize_answer,
    rouge_l,
    score_predictions,
    score_table,
)


def f_measure(lcs: int, n_prediction: int, n_reference: int) -> float:
    """ROUGE-L F from the LCS length: P = lcs / |prediction|, R = lcs / |reference|, F = 2PR / (P + R), x100."""
    if lcs == 0:
        return 0.0
    precision, recall = lcs / n_prediction, lcs / n_reference
    return 100.0 * 2 * precision * recall / (precision + recall)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Textbook dynamic programme for the longest common subsequence (float-free, independent of rouge-score)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@pytest.mark.parametrize(
    ("prediction", "references", "expected"),
    [
        # LCS "the cat sat" = 3; P = 3/3, R = 3/4, F = 6/7
        ("the cat sat", ["the cat sat down"], 100.0 * 6 / 7),
        # non-contiguous LCS "a b c" = 3; P = 3/5, R = 1, F = 2*(3/5)/(8/5) = 3/4
        ("a x b y c", ["a b c"], 75.0),
        # stemming: "running" -> "run" equals "run"
        ("running", ["run"], 100.0),
        # [the, dog(s), are, run(ning)] vs [the, dog, run(s)]: LCS 3, P = 3/4, R = 1, F = 6/7
        ("The dogs are running.", ["the dog runs"], 100.0 * 6 / 7),
        # case and punctuation are dropped by the default tokenizer
        ("Hello, World!", ["hello world"], 100.0),
        # several references: the maximum (0 for "x y"; LCS 2 of 3 and 3 -> F = 2/3 for "a b d")
        ("a b c", ["x y", "a b d"], 100.0 * 2 / 3),
        ("", ["anything"], 0.0),
    ],
)
def test_rouge_l_matches_hand_computed_lcs_values(prediction: str, references: list[str], expected: float) -> None:
    assert rouge_l(prediction, references) == pytest.approx(expected, abs=1e-9)


def test_rouge_l_takes_a_single_reference_string_and_refuses_none() -> None:
    assert rouge_l("the cat", "the cat") == pytest.approx(100.0)
    with pytest.raises(ValueError, match="reference"):
        rouge_l("the cat", [])


# Words of <= 3 letters are never stemmed by rouge-score, so the LCS over them is the plain one.
WORDS = st.lists(st.sampled_from(["ab", "cd", "ef", "gh", "ij", "kl"]), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(prediction=WORDS, references=st.lists(WORDS, min_size=1, max_size=3))
def test_rouge_l_equals_reference_lcs_formula(prediction: list[str], references: list[list[str]]) -> None:
    expected = max(f_measure(lcs_length(prediction, ref), len(prediction), len(ref)) for ref in references)
    assert rouge_l(" ".join(prediction), [" ".join(ref) for ref in references]) == pytest.approx(expected, abs=1e-9)


def test_exact_match_follows_sni_normalisation() -> None:
    assert exact_match("The Answer.", ["the   answer"]) == 100.0
    assert exact_match("yes!", ["no", "Yes"]) == 100.0
    assert exact_match("yes", ["no"]) == 0.0
    # SNI keeps articles; SQuAD's variant removes them
    assert exact_match("an answer", ["answer"]) == 0.0
    assert exact_match("an answer", ["answer"], remove_articles=True) == 100.0
    assert normalize_answer("  It's  A,  test ") == "its a test"


def test_score_table_means_over_instances_per_task_category_and_overall() -> None:
    frame = pd.DataFrame({
        "task": ["a", "b", "b", "b", "c"],
        "instance_id": ["1", "1", "2", "3", "1"],
        "prediction": ["yes", "no", "no", "no", "cat"],
        "references": [("yes",), ("yes",), ("yes",), ("yes",), ("the cat",)],
        "loss": [1.0, 2.0, 4.0, 6.0, 3.0],
    })
    scored = score_predictions(frame)
    assert scored["exact_match"].tolist() == [100.0, 0.0, 0.0, 0.0, 0.0]
    assert scored["rouge_l"].iloc[4] == pytest.approx(100.0 * 2 / 3)  # P = 1, R = 1/2
    table = score_table(scored, {"a": "qa", "b": "qa", "c": "other"})
    tasks = table[table.level == "task"].set_index("name")
    assert tasks.loc["b", "loss"] == pytest.approx(4.0)
    assert tasks.loc["b", "n_instances"] == 3
    categories = table[table.level == "category"].set_index("name")
    assert categories.loc["qa", "exact_match"] == pytest.approx(25.0)  # 1 of 4 instances, not the mean of tasks (50)
    assert categories.loc["qa", "n_tasks"] == 2
    overall = table[table.level == "overall"].iloc[0]
    assert overall["loss"] == pytest.approx(16.0 / 5)
    assert overall["n_instances"] == 5


def test_score_table_names_tasks_without_a_category() -> None:
    frame = pd.DataFrame({"task": ["a", "zz"], "rouge_l": [1.0, 2.0]})
    with pytest.raises(ValueError, match="zz"):
        score_table(frame, {"a": "qa"})


def test_importing_the_scorer_leaves_the_root_logger_alone():
    """Regression: rouge-score's absl logging once ran logging.basicConfig(), echoing pipeline logs to stderr."""
    import subprocess
    import sys

    code = "import logging, taskscope.evaluate; print(len(logging.getLogger().handlers))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"
