"""The Layer-by-Layer claims as hypotheses with verdicts (:class:`taskscope.analysis.findings.Finding`).

`mossa_findings(table, layer_map, params, ...)` returns, in this order:

* **C1** controls: every control beats the base model on its task's validation loss by more than the
  margin (``controls.csv``); the controls must be specialists for "similarity to the specialist" to mean
  anything.
* **N1** noise ceiling: the reference model's CKA with the controls lies below the seed-to-seed CKA of
  replicate controls (mean of ``ceiling - cka`` over tasks and layers > 0; otherwise its differences from
  the specialists are within training noise).
* **F1** pre-trained (``baseline``): CKA high early and its spread across tasks grows with depth
  (spread in the last third of the defined layers minus the first third > 0).
* **F2** instruction-tuned (``params.reference_model``): shared / transition / refinement bands of the
  changepoint rule (:mod:`taskscope.analysis.layer_map`), each claimed by its own test.
* **F3** per held-out model: no transition band on its held-out tasks, where the model tuned on all tasks
  shows one on the same tasks.
* **F4** clusters (Figure 3, as read here): the clusters agree in the transition band and diverge in
  refinement (spread of the cluster means larger in refinement than in transition).
* **R1** (with ``sensitivity``, :func:`taskscope.analysis.sensitivity.topk_flips`): no layer's band or
  difference direction flips when the top-k (massive-activation) directions are removed; the flipped
  layers are named.

Intervals resample tasks (``n_bootstrap`` of the layer-map params, percentile, ``1 - alpha``), the unit
the claims are about; a claim resting on fewer than ``min_tasks`` tasks is inconclusive.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from taskscope.analysis.ceiling import noise_share
from taskscope.analysis.findings import Finding, interval_verdict
from taskscope.analysis.layer_map import LayerMap, LayerMapParams, find_layer_map, task_matrix

MIN_TASKS = 3


def _task_interval(matrix: np.ndarray, statistic: Callable[[np.ndarray], float], params: LayerMapParams,
                   ) -> tuple[float, tuple[float, float] | None]:
    """``statistic(matrix)`` and its percentile interval over resamples of the columns (tasks)."""
    n = matrix.shape[1]
    rng = np.random.default_rng(params.seed)
    with warnings.catch_warnings():  # undefined layers (all NaN) are left out by the nan-aware statistics
        warnings.simplefilter("ignore", RuntimeWarning)
        value = statistic(matrix)
        if params.n_bootstrap == 0 or n < 2:
            return value, None
        draws = np.array([statistic(matrix[:, rng.integers(0, n, size=n)]) for _ in range(params.n_bootstrap)])
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return value, None
    low, high = np.quantile(draws, [params.alpha / 2, 1 - params.alpha / 2])
    return value, (float(low), float(high))


def _thirds(layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, len(layers) // 3)
    return layers[:k], layers[-k:]


def _nanmean(values) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


def controls_finding(controls: pd.DataFrame | None) -> Finding:
    claim = "Every control C_t is a specialist: its validation loss beats the base model's by the margin"
    if controls is None or controls.empty:
        return Finding("C1", claim, "share of controls that learned", None, None, None, 0, "inconclusive",
                       "no control scores (controls.csv is empty)")
    learned = controls["learned"].astype(bool)
    share, n = float(learned.mean()), len(controls)
    low = controls["loss_gain_ci_low"]
    failed = controls.loc[~learned, "item"].tolist()
    weakest = controls.loc[controls["loss_gain"].idxmin()]
    weakest_text = (f"smallest loss gain {weakest['loss_gain']:.3g} nats ({weakest['item']}, interval "
                    f"[{weakest['loss_gain_ci_low']:.3g}, {weakest['loss_gain_ci_high']:.3g}])")
    if learned.all() and (low.isna().all() or (low > 0).all()):
        verdict, reason = "supported", f"all {n} controls beat the base model; {weakest_text}"
    elif failed:
        verdict = "contradicted"
        reason = (f"{len(failed)} of {n} controls did not learn their task: {', '.join(map(str, failed))}; "
                  f"their MOSSA values compare with a model that is not a specialist; {weakest_text}")
    else:
        verdict = "inconclusive"
        reason = f"every control passed the margin but some loss-gain intervals reach 0; {weakest_text}"
    return Finding("C1", claim, "share of controls that learned", share, None, None, n, verdict, reason)


def ceiling_finding(comparison: pd.DataFrame | None, params: LayerMapParams) -> Finding:
    model = params.reference_model
    claim = f"{model}'s similarity to the controls lies below the seed-to-seed similarity of replicate controls"
    statistic = "mean over tasks and layers of ceiling CKA - model CKA"
    rows = None if comparison is None else comparison[
        (comparison["experimental_model"] == model) & (comparison["kernel"] == params.kernel)]
    if rows is None or rows.empty or rows["ceiling_cka"].isna().all():
        return Finding("N1", claim, statistic, None, None, None, 0, "inconclusive",
                       "no replicate controls (control_seeds: 1), so no noise ceiling")
    gap = (rows.assign(gap=rows["ceiling_cka"] - rows["cka"])
           .pivot_table(index="layer", columns="task", values="gap", dropna=False).to_numpy(np.float64))
    value, interval = _task_interval(gap, _nanmean, params)
    verdict, reason = interval_verdict(interval, 1, gap.shape[1], MIN_TASKS)
    within = noise_share(rows)
    noisy = [int(layer) for layer, share in within.items() if share >= 0.5]
    reason += f"; layers where most tasks are within seed noise: {noisy if noisy else 'none'}"
    return Finding("N1", claim, statistic, value, interval, None, gap.shape[1], verdict, reason)


def pretrained_finding(table: pd.DataFrame, baseline: str, params: LayerMapParams) -> Finding:
    claim = f"{baseline}: CKA with the controls is high in early layers and its spread across tasks grows with depth"
    statistic = "std across tasks, last third of layers minus first third"
    values = task_matrix(table, baseline, params.kernel).to_numpy(np.float64)
    layers = np.flatnonzero(~np.all(np.isnan(values), axis=1))
    if len(layers) < 2:
        return Finding("F1", claim, statistic, None, None, None, values.shape[1], "inconclusive",
                       "fewer than two layers with defined CKA")
    early, late = _thirds(layers)

    def growth(m: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanstd(m, axis=1)
        return float(np.nanmean(spread[late]) - np.nanmean(spread[early]))

    value, interval = _task_interval(values, growth, params)
    verdict, reason = interval_verdict(interval, 1, values.shape[1], MIN_TASKS)
    reason += f"; mean CKA in layers {int(early[0])}-{int(early[-1])}: {_nanmean(values[early]):.3f}"
    return Finding("F1", claim, statistic, value, interval, None, values.shape[1], verdict, reason)


def _band_reason(layer_map: LayerMap) -> str:
    parts = []
    for band in ("shared", "transition", "refinement"):
        info = layer_map.evidence.get(band, {})
        p = info.get("p_value")
        p_text = f", p={p:.3g}" if p is not None else ""
        start, stop = info.get("segment", (0, 0))
        if info.get("claimed"):
            parts.append(f"{layer_map.describe(band)} [claimed{p_text}]")
        elif stop > start:
            parts.append(f"{band}: layers {start}-{stop - 1} found but not claimed{p_text}")
        else:
            parts.append(f"{band}: none")
    return "; ".join(parts)


def bands_finding(table: pd.DataFrame, layer_map: LayerMap, params: LayerMapParams) -> Finding:
    claim = (f"{params.reference_model} vs {params.baseline_model}: shared layers (below the pre-trained model), "
             "then a transition (rising to high, uniform across tasks), then refinement (staying high)")
    statistic = "bands claimed by the changepoint rule (p: the largest of their p-values)"
    evidence = layer_map.evidence
    claimed = [b for b in ("shared", "transition", "refinement") if evidence.get(b, {}).get("claimed")]
    p_values = [evidence.get(b, {}).get("p_value") for b in ("shared", "transition", "refinement")]
    p = max((v for v in p_values if v is not None), default=None) if len(claimed) == 3 else None
    n = layer_map.n_tasks
    reason = _band_reason(layer_map)
    diffs = np.array(layer_map.difference, dtype=np.float64)
    defined = np.flatnonzero(np.isfinite(diffs))
    early_above = False
    if len(defined):
        early, _ = _thirds(defined)
        low = np.array(layer_map.difference_low, dtype=np.float64)[early] if layer_map.difference_low else None
        early_above = low is not None and bool(np.all(low > 0))
    if n < MIN_TASKS:
        verdict, reason = "inconclusive", f"only {n} tasks; at least {MIN_TASKS} are needed to decide. " + reason
    elif len(claimed) == 3:
        verdict = "supported"
    elif early_above:
        verdict, reason = "contradicted", "in the early layers the instruction-tuned model lies above the " \
                                          "pre-trained one (interval above 0), not below. " + reason
    else:
        verdict = "inconclusive"
    return Finding("F2", claim, statistic, float(len(claimed)), None, p, n, verdict, reason)


def heldout_finding(table: pd.DataFrame, model: str, params: LayerMapParams, finding_id: str = "F3") -> Finding:
    claim = f"{model}: no transition band on its held-out tasks"
    statistic = "transition band of the changepoint rule on the held-out tasks (p of its test)"
    rows = table[table["experimental_model"] == model]
    tasks = sorted(set(rows.loc[rows["heldout"].astype(bool), "task"]))
    same = table[table["task"].isin(tasks)]
    if len(tasks) < MIN_TASKS:
        return Finding(finding_id, claim, statistic, None, None, None, len(tasks), "inconclusive",
                       f"only {len(tasks)} held-out tasks; at least {MIN_TASKS} are needed to decide")
    own = find_layer_map(same, params.model_copy(update={"reference_model": model}))
    full = find_layer_map(same, params)
    p = own.evidence["transition"].get("p_value")
    if own.evidence["transition"]["claimed"]:
        verdict, reason = "contradicted", f"a transition band is claimed: {own.describe('transition')}"
    elif full.evidence["transition"]["claimed"]:
        verdict = "supported"
        reason = (f"none claimed, while {params.reference_model} shows {full.describe('transition')} on the same "
                  "tasks")
    else:
        verdict = "inconclusive"
        reason = f"no transition claimed for {params.reference_model} on these tasks either: the test lacks power"
    return Finding(finding_id, claim, statistic, float(own.transition[1] - own.transition[0]), None, p, len(tasks),
                   verdict, reason)


def cluster_finding(table: pd.DataFrame, layer_map: LayerMap, params: LayerMapParams) -> Finding:
    claim = (f"{params.reference_model}: task clusters agree in the transition band and diverge in refinement "
             "(Figure 3)")
    statistic = "std across cluster means, refinement minus transition"
    rows = table[(table["experimental_model"] == params.reference_model) & (table["kernel"] == params.kernel)]
    clusters = rows.groupby("task")["cluster"].first()
    n_clusters = clusters.nunique()
    transition, refinement = (range(*layer_map.transition), range(*layer_map.refinement))
    if n_clusters < MIN_TASKS or not len(transition) or not len(refinement):
        why = (f"only {n_clusters} clusters" if n_clusters < MIN_TASKS
               else "the layer map claims no transition or no refinement band")
        return Finding("F4", claim, statistic, None, None, None, int(n_clusters), "inconclusive", why)
    matrix = task_matrix(rows, params.reference_model, params.kernel)
    labels = clusters.reindex(matrix.columns).to_numpy()
    values = matrix.to_numpy(np.float64)
    t_layers = [layer for layer in transition if layer not in layer_map.undefined]
    r_layers = [layer for layer in refinement if layer not in layer_map.undefined]
    columns = np.arange(values.shape[1])

    def divergence(picked: np.ndarray) -> float:
        idx = picked[0].astype(int)
        sub, lab = values[:, idx], labels[idx]
        means = np.stack([np.nanmean(sub[:, lab == c], axis=1) for c in np.unique(lab)], axis=1)
        spread = np.nanstd(means, axis=1)
        return float(np.nanmean(spread[r_layers]) - np.nanmean(spread[t_layers]))

    value, interval = _task_interval(columns[None, :].astype(np.float64), divergence, params)
    verdict, reason = interval_verdict(interval, 1, int(n_clusters), MIN_TASKS)
    return Finding("F4", claim, statistic, value, interval, None, int(n_clusters), verdict, reason)


def robustness_finding(sensitivity: dict, params: LayerMapParams) -> Finding:
    claim = (f"{params.reference_model} vs {params.baseline_model}: the layer map does not rest on a few "
             "dominating (massive-activation) directions")
    statistic = "layers whose band or difference direction flips with the top-k directions removed"
    rows, flipped = sensitivity.get("layers", []), sensitivity.get("flipped_layers", [])
    if not rows:
        return Finding("R1", claim, statistic, None, None, None, 0, "inconclusive",
                       "no cka_without_topk column (top_k: 0)")
    k = sensitivity.get("top_k")
    if not flipped:
        return Finding("R1", claim, statistic, 0.0, None, None, len(rows), "supported",
                       f"no layer's conclusion changes without the top {k} directions")
    bands = [r["layer"] for r in rows if r["flipped"] and r["band"] != r["band_without_topk"]]
    directions = [r["layer"] for r in rows if r["flipped"] and r["direction"] != r["direction_without_topk"]]
    return Finding("R1", claim, statistic, float(len(flipped)), None, None, len(rows), "contradicted",
                   f"{len(flipped)} of {len(rows)} layers flip without the top {k} directions: {flipped}; the band "
                   f"changes at {bands or 'none'}, the difference's direction at {directions or 'none'} "
                   "(per layer: findings.json 'sensitivity', the report's robustness section)")


def mossa_findings(table: pd.DataFrame, layer_map: LayerMap, params: LayerMapParams, *,
                   controls: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None,
                   baseline: str = "pretrained", heldout_models: Sequence[str] = (),
                   sensitivity: dict | None = None) -> list[Finding]:
    """C1, N1, F1, F2, F3 (one per held-out model), F4, and R1 when ``sensitivity`` is given; see the
    module docstring."""
    if params.rule != "changepoint":  # the claims are about the paper's bands: decide them by the changepoint rule
        params = params.model_copy(update={"rule": "changepoint"})
        layer_map = find_layer_map(table, params)
    findings = [controls_finding(controls), ceiling_finding(comparison, params),
                pretrained_finding(table, baseline, params), bands_finding(table, layer_map, params)]
    findings += [heldout_finding(table, model, params, "F3" if len(heldout_models) == 1 else f"F3-{model}")
                 for model in heldout_models]
    findings.append(cluster_finding(table, layer_map, params))
    if sensitivity is not None:
        findings.append(robustness_finding(sensitivity, params))
    return findings
