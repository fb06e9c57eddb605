"""Text metrics exactly as the Super-NaturalInstructions evaluation (``compute_metrics.py``) computes them.

* `rouge_l(prediction, references)`: for every reference, rouge-score's
  ``RougeScorer(["rougeL"], use_stemmer=True)`` with its default tokenizer (lower-case, every
  non-alphanumeric character becomes a space, split on whitespace, Porter-stem tokens longer than 3
  characters), F-measure of the longest common subsequence; the maximum over the references; times 100.
* `exact_match(prediction, references)`: 100 if ``normalize_answer(prediction)`` equals
  ``normalize_answer(reference)`` for some reference, else 0.  `normalize_answer` follows SNI, which adapts
  SQuAD v1.1's ``normalize_answer`` *without removing articles*: lower-case, delete every character of
  ``string.punctuation``, collapse whitespace.  ``remove_articles=True`` gives SQuAD's variant (also deletes
  the words a / an / the).
* `score_predictions` adds both metrics per instance to a frame; `score_table` aggregates them per task,
  per task category and overall (means over instances, as SNI's grouped metrics do).
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping, Sequence

import pandas as pd
from rouge_score import rouge_scorer


def _new_scorer() -> rouge_scorer.RougeScorer:
    """SNI's scorer (ROUGE-L, Porter stemming, default tokenizer).

    rouge-score logs through absl, whose first log call runs ``logging.basicConfig()`` when the root logger
    has no handler; that would echo every later log record of the process to stderr.  A ``NullHandler`` on
    the root logger while the scorer is built keeps the user's logging setup untouched.
    """
    root, guard = logging.getLogger(), logging.NullHandler()
    root.addHandler(guard)
    try:
        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    finally:
        root.removeHandler(guard)


_SCORER = _new_scorer()
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
METRIC_COLUMNS = ("rouge_l", "exact_match")


def _references(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("at least one reference is needed to score a prediction")
    return refs


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """SNI ROUGE-L (0-100): the maximum over ``references`` of rouge-score's stemmed ROUGE-L F-measure."""
    return 100.0 * max(_SCORER.score(target=ref, prediction=prediction)["rougeL"].fmeasure
                       for ref in _references(references))


def normalize_answer(text: str, *, remove_articles: bool = False) -> str:
    """Lower-case, delete ``string.punctuation``, [delete a/an/the,] collapse whitespace (SNI / SQuAD)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    if remove_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: str | Sequence[str], *, remove_articles: bool = False) -> float:
    """100.0 when the normalised prediction equals some normalised reference, else 0.0."""
    predicted = normalize_answer(prediction, remove_articles=remove_articles)
    return 100.0 * any(predicted == normalize_answer(ref, remove_articles=remove_articles)
                       for ref in _references(references))


def score_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` (columns ``prediction``, ``references``) with ``rouge_l`` and ``exact_match``."""
    missing = {"prediction", "references"} - set(frame.columns)
    if missing:
        raise ValueError(f"cannot score predictions: missing column(s) {sorted(missing)}")
    scored = frame.copy()
    scored["rouge_l"] = [rouge_l(p, r) for p, r in zip(frame["prediction"], frame["references"])]
    scored["exact_match"] = [exact_match(p, r) for p, r in zip(frame["prediction"], frame["references"])]
    return scored


def score_table(scored: pd.DataFrame, categories: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Aggregate per-instance scores per task, per category and overall.

    ``scored`` has one row per instance with columns ``task`` and any of ``rouge_l``, ``exact_match``,
    ``loss``; ``categories`` maps task -> category (else a ``category`` column is used when present).
    Returns columns ``level`` (``"task"``, ``"category"``, ``"overall"``), ``name``, ``n_tasks``,
    ``n_instances`` and the mean of each metric over the instances of the group.
    """
    metrics = [c for c in (*METRIC_COLUMNS, "loss") if c in scored.columns]
    if "task" not in scored.columns or not metrics:
        raise ValueError("score_table needs a 'task' column and at least one of rouge_l, exact_match, loss")
    frame = scored.copy()
    if categories is not None:
        unknown = sorted(set(frame["task"]) - set(categories))
        if unknown:
            raise ValueError(f"no category given for task(s) {unknown}")
        frame["category"] = frame["task"].map(categories)
    groups = [("task", "task")] + ([("category", "category")] if "category" in frame.columns else [])
    parts = []
    for level, column in groups:
        grouped = frame.groupby(column, sort=True)
        part = grouped[metrics].mean().reset_index().rename(columns={column: "name"})
        part.insert(0, "level", level)
        part.insert(2, "n_tasks", grouped["task"].nunique().to_numpy())
        part.insert(3, "n_instances", grouped.size().to_numpy())
        parts.append(part)
    overall = {"level": "overall", "name": "all", "n_tasks": frame["task"].nunique(), "n_instances": len(frame),
               **{m: frame[m].mean() for m in metrics}}
    parts.append(pd.DataFrame([overall]))
    return pd.concat(parts, ignore_index=True)
