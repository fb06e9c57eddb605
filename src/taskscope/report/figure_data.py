"""Figure data, computed once and drawn twice: by :mod:`taskscope.report.figures` (matplotlib, PNG/PDF) and by
:mod:`taskscope.report.html` (plotly).  Every function takes the run's tables and returns a tidy DataFrame.

* :func:`task_mean_interval`: per layer, the mean across tasks and its Student-t interval over tasks (the unit
  the claims are about); with a single task, the mean of its rows' bootstrap ``ci_low``/``ci_high``;
* :func:`model_curves`: that, per experimental model (``mean``, ``low``, ``high`` per layer);
* :func:`heldout_sets`: like for like - for each model with held-out tasks, every model on those same tasks;
* :func:`ceiling_curve` / :func:`noise_layers`: the seed-to-seed ceiling per layer and the layers where most
  tasks' model-control CKA cannot be told apart from it;
* :func:`against_trend`: the tasks whose paired difference to the baseline goes against the models' mean at a
  layer where that mean's interval excludes 0;
* :func:`sensitivity`: per model and layer, CKA with and without the top-k directions, and whether the
  sign of the difference to the baseline flips without them;
* :func:`band_means`: mean CKA per model and band, columns in band order.

Undefined layers stay NaN (drawn as gaps); layers are ``0 .. num_layers - 1``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from taskscope.analysis.ceiling import noise_share
from taskscope.analysis.layer_map import BANDS, LayerMap

CURVE_COLUMNS = ["experimental_model", "layer", "mean", "low", "high", "n_tasks"]


def task_mean_interval(rows: pd.DataFrame, layers, confidence: float = 0.95,
                       value: str = "cka") -> tuple[np.ndarray, ...]:
    """Per layer of ``layers``: mean ``value`` across the rows' tasks and its interval (module docstring)."""
    grouped = rows.groupby("layer")[value]
    mean = grouped.mean().reindex(layers).to_numpy(np.float64)
    count = grouped.count().reindex(layers).fillna(0).to_numpy()
    std = grouped.std(ddof=1).reindex(layers).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + confidence / 2, np.maximum(count - 1, 1)) * std / np.sqrt(count)
    low, high = mean - half, mean + half
    single = count == 1
    if single.any() and {"ci_low", "ci_high"} <= set(rows.columns):
        low[single] = rows.groupby("layer")["ci_low"].mean().reindex(layers).to_numpy(np.float64)[single]
        high[single] = rows.groupby("layer")["ci_high"].mean().reindex(layers).to_numpy(np.float64)[single]
    return mean, low, high


def _count(rows: pd.DataFrame, layers, value: str) -> np.ndarray:
    return rows.groupby("layer")[value].count().reindex(layers).fillna(0).to_numpy(int)


def model_curves(rows: pd.DataFrame, layers, value: str = "cka") -> pd.DataFrame:
    """Per experimental model (table order) and layer: mean ``value`` across tasks, its interval, ``n_tasks``."""
    parts = []
    for model, sub in rows.groupby("experimental_model", sort=False):
        mean, low, high = task_mean_interval(sub, layers, value=value)
        parts.append(pd.DataFrame({"experimental_model": model, "layer": list(layers), "mean": mean, "low": low,
                                   "high": high, "n_tasks": _count(sub, layers, value)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CURVE_COLUMNS)


def heldout_sets(table: pd.DataFrame, kernel: str, layers) -> list[tuple[str, list[str], pd.DataFrame]]:
    """Per model holding tasks out: (that model, its held-out tasks, :func:`model_curves` of every model on them)."""
    rows = table[table["kernel"] == kernel]
    out = []
    for holder, sub in rows.groupby("experimental_model", sort=False):
        tasks = sorted(set(sub.loc[sub["heldout"].astype(str).str.lower() == "true", "task"]))
        if tasks:
            out.append((holder, tasks, model_curves(rows[rows["task"].isin(tasks)], layers)))
    return out


def ceiling_curve(comparison: pd.DataFrame | None, kernel: str, layers) -> pd.DataFrame | None:
    """Mean seed-to-seed ceiling per layer (``ceiling_cka``, ``ceiling_ci_low``, ``ceiling_ci_high``); None if absent."""
    if comparison is None or "ceiling_cka" not in comparison or not comparison["ceiling_cka"].notna().any():
        return None
    ceiling = comparison[comparison["kernel"] == kernel].drop_duplicates(["task", "layer"])
    return ceiling.groupby("layer")[["ceiling_cka", "ceiling_ci_low", "ceiling_ci_high"]].mean().reindex(layers)


def noise_layers(comparison: pd.DataFrame | None, model: str, kernel: str, threshold: float = 0.5) -> list[int]:
    """Layers where at least ``threshold`` of ``model``'s tasks are within seed noise of the ceiling."""
    if comparison is None or "within_noise" not in comparison:
        return []
    flags = comparison[(comparison["experimental_model"] == model) & (comparison["kernel"] == kernel)]
    return [int(layer) for layer, share in noise_share(flags).items() if share >= threshold]


def against_trend(differences: pd.DataFrame, kernel: str, layers) -> pd.DataFrame:
    """Tasks that go against the trend: at a layer where a model's mean difference to the baseline has an
    interval excluding 0, the tasks whose own paired interval (or, without one, point difference) lies on the
    other side of 0.  Columns: model, baseline, layer, trend (+1 / -1), task, cluster, cka_diff, ci_low, ci_high."""
    columns = ["experimental_model", "baseline", "layer", "trend", "task", "cluster", "cka_diff", "ci_low", "ci_high"]
    rows = differences[differences["kernel"] == kernel] if len(differences) else differences
    if rows is None or rows.empty:
        return pd.DataFrame(columns=columns)
    has_ci = {"ci_low", "ci_high"} <= set(rows.columns)
    out = []
    for model, sub in rows.groupby("experimental_model", sort=False):
        curve = model_curves(sub.assign(experimental_model=model), layers, value="cka_diff").set_index("layer")
        for layer, point in curve.iterrows():
            if not np.isfinite(point["low"]) or point["n_tasks"] < 2 or point["low"] <= 0 <= point["high"]:
                continue
            trend = 1 if point["low"] > 0 else -1
            here = sub[sub["layer"] == layer]
            upper = here["ci_high"] if has_ci else here["cka_diff"]
            lower = here["ci_low"] if has_ci else here["cka_diff"]
            against = here[(upper < 0) if trend > 0 else (lower > 0)]
            for _, r in against.iterrows():
                out.append({"experimental_model": model, "baseline": r.get("baseline", ""), "layer": int(layer),
                            "trend": trend, "task": r["task"], "cluster": r["cluster"], "cka_diff": r["cka_diff"],
                            "ci_low": r["ci_low"] if has_ci else np.nan, "ci_high": r["ci_high"] if has_ci else np.nan})
    return pd.DataFrame(out, columns=columns)


SENSITIVITY_COLUMNS = ["experimental_model", "layer", "top_k", "cka", "cka_without_topk", "var_share_exp",
                       "var_share_ctrl", "diff", "diff_without_topk", "flips"]


def has_sensitivity(table: pd.DataFrame) -> bool:
    return "cka_without_topk" in table and table["cka_without_topk"].notna().any()


def sensitivity(table: pd.DataFrame, kernel: str, baseline: str | None) -> pd.DataFrame:
    """Per model and layer: mean CKA with and without the top-k directions, the top-k variance shares, and the
    mean difference to ``baseline`` with and without them; ``flips``: that difference changes sign (models other
    than the baseline; without a baseline in the table, no flips are claimed)."""
    rows = table[(table["kernel"] == kernel)]
    if not has_sensitivity(rows):
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    share = {side: next((c for c in rows.columns if c.startswith("topk_var_share") and c.endswith(side)), None)
             for side in ("exp", "ctrl")}
    values = {"cka": ("cka", "mean"), "cka_without_topk": ("cka_without_topk", "mean"), "top_k": ("top_k", "max")}
    values.update({f"var_share_{side}": (column, "mean") for side, column in share.items() if column})
    means = rows.groupby(["experimental_model", "layer"], sort=False).agg(**values).reset_index()
    for side, column in share.items():
        if column is None:
            means[f"var_share_{side}"] = np.nan
    means["diff"] = means["diff_without_topk"] = np.nan
    means["flips"] = False
    models = list(dict.fromkeys(rows["experimental_model"]))
    if baseline in models:
        keys = ["task", "layer"]
        base = (rows[rows["experimental_model"] == baseline].set_index(keys)[["cka", "cka_without_topk"]]
                .rename(columns=lambda c: f"{c}_base"))
        for model in models:
            if model == baseline:
                continue
            paired = rows[rows["experimental_model"] == model].join(base, on=keys)
            diff = (paired["cka"] - paired["cka_base"]).groupby(paired["layer"]).mean()
            diff_k = (paired["cka_without_topk"] - paired["cka_without_topk_base"]).groupby(paired["layer"]).mean()
            at = means["experimental_model"] == model
            means.loc[at, "diff"] = means.loc[at, "layer"].map(diff).to_numpy()
            means.loc[at, "diff_without_topk"] = means.loc[at, "layer"].map(diff_k).to_numpy()
            flips = np.sign(means.loc[at, "diff"]) * np.sign(means.loc[at, "diff_without_topk"]) < 0
            means.loc[at, "flips"] = flips.to_numpy()
    return means[SENSITIVITY_COLUMNS]


def band_means(table: pd.DataFrame, layer_map: LayerMap) -> pd.DataFrame:
    """Mean CKA per experimental model (rows) and claimed band (columns in band order); undefined layers in none."""
    kernel = layer_map.params.get("kernel", table["kernel"].iloc[0])
    rows = table[table["kernel"] == kernel].assign(band=lambda d: d["layer"].map(layer_map.band_of))
    rows = rows[rows["band"].notna() & rows["cka"].notna()]
    if rows.empty:
        return pd.DataFrame()
    out = rows.pivot_table(index="experimental_model", columns="band", values="cka", aggfunc="mean").round(3)
    return out.reindex(columns=[b for b in BANDS if b in out.columns])


TRAINING_COLUMNS = ["role", "model", "kind", "step", "loss"]


def training_curves(logs: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """``logs`` (role, model, kind = train / eval, step, loss) split by role (``control``, ``experimental``)."""
    if logs is None or logs.empty:
        return {}
    return {role: part.sort_values(["model", "kind", "step"]) for role, part in logs.groupby("role", sort=False)}


def band_spans(layer_map: LayerMap) -> list[tuple[str, float, float]]:
    """(band, x0, x1) for every run of consecutive layers of one claimed band (undefined layers break a run)."""
    spans: list[tuple[str, float, float]] = []
    for layer in range(layer_map.num_layers):
        band = layer_map.band_of(layer)
        if band is None:
            continue
        if spans and spans[-1][0] == band and spans[-1][2] == layer - 0.5:
            spans[-1] = (band, spans[-1][1], layer + 0.5)
        else:
            spans.append((band, layer - 0.5, layer + 0.5))
    return spans
