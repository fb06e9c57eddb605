"""Other similarity measures beside CKA, and whether the layer-wise conclusions agree across them.

:func:`measure_table` computes, for every experimental model, task and layer, each configured measure of
the measure registry (:data:`taskscope.similarity.MEASURES`: Procrustes, RSA, SVCCA, PWCCA, mutual kNN, CKA
with other kernels, or a plug-in) between the model's states and the task's control's.

:func:`measure_agreement` turns each measure into a conclusion per (model, layer), in order:

1. per task, the model's value minus the baseline model's, oriented so that > 0 means "more similar to the
   control" (distances such as Procrustes flip sign);
2. the mean over tasks and an exact sign-flip test of it across tasks (all ``2^T`` flips up to 12 tasks,
   else 20,000 random ones);
3. the conclusion ``"higher"`` / ``"lower"`` when ``p < alpha``, else ``"no difference"``;
4. ``agrees``: the same conclusion as the reference measure (the study's first CKA kernel).

:func:`measures_finding` states the claim "the conclusions do not depend on the measure" with a verdict:
supported when every (model, layer) agrees, contradicted when two measures reach opposite significant
conclusions anywhere, inconclusive otherwise.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from taskscope.analysis.findings import Finding
from taskscope.similarity import SimilarityWarning, get_measure

MEASURE_COLUMNS = ["experimental_model", "task", "cluster", "heldout", "layer", "measure", "value",
                   "higher_is_similar"]
AGREEMENT_COLUMNS = ["experimental_model", "baseline", "layer", "measure", "mean_diff", "p_value", "n_tasks",
                     "conclusion", "reference", "reference_conclusion", "agrees"]


def measure_label(name: str, params: Mapping[str, Any]) -> str:
    """``"rsa"`` or ``"rsa(metric=euclidean)"``: the label of a configured measure in the tables."""
    return name if not params else f"{name}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def measure_table(experimental: Mapping[str, Mapping[str, torch.Tensor]], controls: Mapping[str, torch.Tensor],
                  clusters: Mapping[str, str], measures: Sequence[tuple[str, Mapping[str, Any]]], *,
                  heldout: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
    """One row per (model, task, layer, measure); columns :data:`MEASURE_COLUMNS` (NaN where undefined)."""
    heldout = {m: set(t) for m, t in (heldout or {}).items()}
    rows = []
    for name, params in measures:
        measure, label = get_measure(name, **params), measure_label(name, params)
        higher = bool(measure.higher_is_similar)
        for model, by_task in experimental.items():
            for task, states in by_task.items():
                if task not in controls:
                    raise KeyError(f"no control model states for task {task!r} (experimental model {model!r})")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SimilarityWarning)
                    curve = np.atleast_1d(np.asarray(measure(states, controls[task]), dtype=np.float64))
                for layer, value in enumerate(curve):
                    rows.append((model, task, clusters.get(task, "uncategorised"), task in heldout.get(model, ()),
                                 layer, label, float(value), higher))
    return pd.DataFrame(rows, columns=MEASURE_COLUMNS)


def sign_flip_p(values: np.ndarray, *, n_random: int = 20_000, seed: int = 0) -> float:
    """Two-sided p of the mean of paired differences under random sign flips (exact up to 12 values)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0 or not np.any(values):
        return 1.0
    observed = abs(values.mean())
    if len(values) <= 12:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(values))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_random, len(values)))
    means = np.abs(signs @ values) / len(values)
    return float(np.mean(means >= observed - 1e-12 * max(observed, 1.0)))


def _oriented(table: pd.DataFrame) -> pd.DataFrame:
    """Columns model, task, layer, measure, score (higher = more similar)."""
    sign = np.where(table["higher_is_similar"], 1.0, -1.0)
    return table.assign(score=table["value"] * sign)[["experimental_model", "task", "layer", "measure", "score"]]


def measure_agreement(measures: pd.DataFrame, mossa: pd.DataFrame, baseline: str, *, alpha: float = 0.05,
                      seed: int = 0) -> pd.DataFrame:
    """Each measure's conclusion per (model, layer) against ``baseline`` and whether it agrees with CKA's."""
    kernel = mossa["kernel"].iloc[0] if len(mossa) else "linear"
    reference = f"cka[{kernel}]"
    cka = mossa[mossa["kernel"] == kernel].rename(columns={"cka": "value"}).assign(measure=reference,
                                                                                 higher_is_similar=True)
    scores = _oriented(pd.concat([cka[MEASURE_COLUMNS], measures[MEASURE_COLUMNS]], ignore_index=True))
    base = scores[scores["experimental_model"] == baseline].drop(columns="experimental_model")
    others = scores[scores["experimental_model"] != baseline]
    paired = others.merge(base, on=["task", "layer", "measure"], suffixes=("", "_base"))
    rows = []
    for (model, layer, measure), group in paired.groupby(["experimental_model", "layer", "measure"], sort=True):
        diff = (group["score"] - group["score_base"]).to_numpy()
        diff = diff[np.isfinite(diff)]
        mean = float(diff.mean()) if len(diff) else float("nan")
        p = sign_flip_p(diff, seed=seed) if len(diff) else float("nan")
        conclusion = ("higher" if mean > 0 else "lower") if len(diff) and p < alpha else "no difference"
        rows.append((model, baseline, int(layer), measure, mean, p, len(diff), conclusion))
    table = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS[:8])
    ref = table[table["measure"] == reference][["experimental_model", "layer", "conclusion"]]
    table = table.merge(ref.rename(columns={"conclusion": "reference_conclusion"}),
                        on=["experimental_model", "layer"], how="left").assign(reference=reference)
    table["agrees"] = table["conclusion"] == table["reference_conclusion"]
    return table[AGREEMENT_COLUMNS]


def measures_finding(agreement: pd.DataFrame) -> Finding:
    """M1: the layer-wise conclusions (model vs baseline) are the same under every chosen measure."""
    claim = "the layer-wise conclusions (each model against the baseline) do not depend on the similarity measure"
    statistic = "share of (model, layer) cells where every measure reaches CKA's conclusion"
    cells = agreement.groupby(["experimental_model", "layer"])
    n = cells.ngroups
    if n == 0 or agreement["measure"].nunique() < 2:
        return Finding("M1", claim, statistic, None, None, None, 0, "inconclusive",
                       "fewer than two measures or no model besides the baseline")
    share = float(cells["agrees"].all().mean())
    opposite = cells["conclusion"].agg(lambda c: {"higher", "lower"} <= set(c)).sum()
    if opposite:
        verdict, reason = "contradicted", f"in {opposite} of {n} cells two measures reach opposite significant conclusions"
    elif share == 1.0:
        verdict, reason = "supported", f"all {n} cells agree across {agreement['measure'].nunique()} measures"
    else:
        verdict, reason = "inconclusive", (f"{share:.0%} of {n} cells agree; the rest differ only between a "
                                           "significant change and no detectable change")
    return Finding("M1", claim, statistic, share, None, None, n, verdict, reason)
