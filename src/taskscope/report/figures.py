"""Static figures (matplotlib) mirroring the Layer-by-Layer paper, saved as PNG and PDF.

* ``cka_distribution_{kernel}``: per experimental model, the distribution of CKA across tasks at
  every layer (box per layer), with the layer-map bands shaded;
* ``cluster_curves_{kernel}``: per experimental model, mean CKA per cluster vs layer;
* ``heldout_comparison_{kernel}``: mean CKA vs layer per model with its interval across tasks; for models
  with held-out tasks, the held-out tasks' curve dashed next to the seen tasks' curve;
* ``differences_{kernel}``: each model minus the baseline, mean across tasks with its interval;
* ``layer_map``: the difference curve with its interval and the bands (changepoint rule), or the
  reference model's mean curve +- spread and the thresholds (threshold rule).

Intervals of a mean across tasks (:func:`task_mean_interval`) are Student-t intervals over tasks (the
unit the claims are about); with a single task, the mean of its rows' bootstrap ``ci_low``/``ci_high``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from taskscope.analysis.layer_map import BANDS, LayerMap
from taskscope.common.files import atomic_path

FORMATS = ("png", "pdf")

BAND_COLOURS = {"shared": "#4c9be8", "transition": "#f2b447", "refinement": "#e8684c"}


def task_mean_interval(rows: pd.DataFrame, layers, confidence: float = 0.95) -> tuple[np.ndarray, ...]:
    """Per layer of ``layers``: mean ``cka`` across the rows' tasks and its interval (module docstring)."""
    grouped = rows.groupby("layer")["cka"]
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


def shade_bands(ax, layer_map: LayerMap) -> None:
    """Shade the layer map's non-empty bands on an axis whose x is the layer index."""
    for name in BANDS:
        start, stop = getattr(layer_map, name)
        if stop > start:
            ax.axvspan(start - 0.5, stop - 0.5, color=BAND_COLOURS[name], alpha=0.12, lw=0, label=f"{name} band")


def _layer_axis(ax) -> None:
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig: Figure, path_stem: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``path_stem.<format>`` for every format (each atomically) and close it; return the paths."""
    stem = Path(path_stem)
    paths = []
    try:
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"
            with atomic_path(path) as temporary:
                fig.savefig(temporary, format=fmt, bbox_inches="tight", dpi=150)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _panels(n: int, title: str):
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), sharey=True, squeeze=False)
    fig.suptitle(title, y=1.02)
    return fig, axes[0]


def cka_distribution(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path, formats: Sequence[str]):
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    fig, axes = _panels(len(models), f"CKA with the task's control model across tasks ({kernel} kernel)")
    for ax, model in zip(axes, models):
        sub = rows[(rows["experimental_model"] == model) & rows["cka"].notna()]
        layers = sorted(sub["layer"].unique())
        ax.boxplot([sub.loc[sub["layer"] == layer, "cka"].to_numpy() for layer in layers], positions=layers,
                   widths=0.6, showfliers=False)
        shade_bands(ax, layer_map)
        ax.set_title(model)
        ax.set_xlabel("layer")
        ticks = layers[:: max(1, len(layers) // 8)]
        # boxplot installs fixed labels 1..N; relabel with the layer numbers themselves
        ax.set_xticks(ticks, labels=[str(int(t)) for t in ticks])
    axes[0].set_ylabel("CKA")
    return save_figure(fig, out_dir / f"cka_distribution_{kernel}", formats)


def cluster_curves(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path, formats: Sequence[str]):
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    fig, axes = _panels(len(models), f"Mean CKA per task cluster ({kernel} kernel)")
    for ax, model in zip(axes, models):
        sub = rows[rows["experimental_model"] == model].groupby(["cluster", "layer"])["cka"].mean().reset_index()
        shade_bands(ax, layer_map)
        for cluster, curve in sub.groupby("cluster"):
            ax.plot(curve["layer"], curve["cka"], marker=".", label=cluster)
        ax.set_title(model)
        _layer_axis(ax)
    axes[0].set_ylabel("mean CKA")
    axes[-1].legend(fontsize=7, loc="best")
    return save_figure(fig, out_dir / f"cluster_curves_{kernel}", formats)


def _curve(ax, rows: pd.DataFrame, layers, **style) -> None:
    mean, low, high = task_mean_interval(rows, layers)
    line = ax.plot(layers, mean, marker=".", **style)[0]
    ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.15, lw=0)


def heldout_comparison(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path,
                       formats: Sequence[str]):
    rows = table[table["kernel"] == kernel]
    layers = np.arange(layer_map.num_layers)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    shade_bands(ax, layer_map)
    for model, sub in rows.groupby("experimental_model", sort=False):
        if sub["heldout"].any():
            for heldout, part in sub.groupby("heldout"):
                _curve(ax, part, layers, ls="--" if heldout else "-",
                       label=f"{model} ({'held-out' if heldout else 'seen'} tasks)")
        else:
            _curve(ax, sub, layers, label=model)
    _layer_axis(ax)
    ax.set_ylabel("mean CKA across tasks")
    ax.set_title(f"Experimental models compared ({kernel} kernel)")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / f"heldout_comparison_{kernel}", formats)


def differences_figure(differences: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path,
                       formats: Sequence[str]):
    rows = differences[differences["kernel"] == kernel].rename(columns={"cka_diff": "cka"})
    layers = np.arange(layer_map.num_layers)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    shade_bands(ax, layer_map)
    for model, sub in rows.groupby("experimental_model", sort=False):
        _curve(ax, sub, layers, label=f"{model} - {sub['baseline'].iloc[0]}")
    ax.axhline(0, color="grey", lw=0.8)
    _layer_axis(ax)
    ax.set_ylabel("CKA difference (mean across tasks)")
    ax.set_title(f"Difference to the baseline ({kernel} kernel)")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / f"differences_{kernel}", formats)


def layer_map_figure(layer_map: LayerMap, out_dir: Path, formats: Sequence[str]):
    params = layer_map.params
    layers = list(range(layer_map.num_layers))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    shade_bands(ax, layer_map)
    if layer_map.difference:
        ax.plot(layers, layer_map.difference, color="black", marker=".",
                label=f"{params['reference_model']} - {params['baseline_model']}")
        ax.fill_between(layers, layer_map.difference_low, layer_map.difference_high, color="grey", alpha=0.3,
                        label="interval across tasks")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("CKA difference")
    else:
        mean, spread = pd.Series(layer_map.mean_cka), pd.Series(layer_map.spread)
        ax.plot(layers, mean, color="black", marker=".", label=f"{params['reference_model']} mean CKA")
        ax.fill_between(layers, mean - spread, mean + spread, color="grey", alpha=0.3, label=f"+- {params['spread']}")
        ax.axhline(params["shared_min_cka"], color=BAND_COLOURS["shared"], ls=":", label="shared_min_cka")
        ax.axhline(params["refinement_max_cka"], color=BAND_COLOURS["refinement"], ls=":", label="refinement_max_cka")
        ax.set_ylabel("CKA")
    _layer_axis(ax)
    ax.set_title("Layer map")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "layer_map", formats)


def write_figures(table: pd.DataFrame, layer_map: LayerMap, out_dir: Path,
                  formats: Sequence[str] = ("png", "pdf"), differences: pd.DataFrame | None = None) -> list[Path]:
    """Every figure of the module docstring, for every kernel in ``table``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kernel in dict.fromkeys(table["kernel"]):
        paths += cka_distribution(table, layer_map, kernel, out_dir, formats)
        paths += cluster_curves(table, layer_map, kernel, out_dir, formats)
        paths += heldout_comparison(table, layer_map, kernel, out_dir, formats)
        if differences is not None and (differences["kernel"] == kernel).any():
            paths += differences_figure(differences, layer_map, kernel, out_dir, formats)
    paths += layer_map_figure(layer_map, out_dir, formats)
    return paths
