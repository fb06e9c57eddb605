"""Static figures (matplotlib) mirroring the Layer-by-Layer paper, saved as PNG and PDF.

Drawn from the figure data of :mod:`taskscope.report.figure_data` (the interactive report draws the same);
every layer axis has integer ticks and the claimed bands shaded, undefined layers are gaps.

* ``cka_distribution_{kernel}``: per experimental model, the distribution of CKA across tasks per layer;
* ``cluster_curves_{kernel}``: per experimental model, mean CKA per cluster vs layer with its interval;
* ``ceiling_{kernel}``: every model's mean CKA against the seed-to-seed noise ceiling (x: within noise);
* ``differences_{kernel}``: each model minus the baseline (interval over tasks; circled: against the trend);
* ``heldout_comparison_{kernel}``: like for like, every model on the tasks a model held out;
* ``heatmap_{kernel}``: per model, task x layer CKA;
* ``sensitivity_{kernel}``: CKA with and without the top-k directions, layers whose conclusion flips;
* ``layer_map``: the difference curve with its interval and the bands (changepoint rule), or the
  reference model's mean curve +- spread and the thresholds (threshold rule);
* ``training_curves``: training and validation loss of every control and experimental model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from taskscope.analysis.layer_map import LayerMap
from taskscope.common.files import atomic_path
from taskscope.report.figure_data import (against_trend, band_spans, ceiling_curve, heldout_sets, model_curves,
                                          noise_layers, sensitivity, task_mean_interval, training_curves)

FORMATS = ("png", "pdf")

BAND_COLOURS = {"shared": "#4c9be8", "transition": "#f2b447", "refinement": "#e8684c"}


def shade_bands(ax, layer_map: LayerMap) -> None:
    """Shade the layer map's non-empty bands on an axis whose x is the layer index."""
    labelled = set()
    for name, x0, x1 in band_spans(layer_map):
        ax.axvspan(x0, x1, color=BAND_COLOURS[name], alpha=0.12, lw=0,
                   label=None if name in labelled else f"{name} band")
        labelled.add(name)


def _layer_axis(ax, num_layers: int | None = None) -> None:
    """Integer layer ticks; with ``num_layers`` every layer is on the axis (undefined ones as gaps)."""
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if num_layers:
        ax.set_xlim(-0.5, num_layers - 0.5)


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
        ax.set_xlim(-0.5, layer_map.num_layers - 0.5)
    axes[0].set_ylabel("CKA")
    return save_figure(fig, out_dir / f"cka_distribution_{kernel}", formats)


def cluster_curves(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path, formats: Sequence[str]):
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    fig, axes = _panels(len(models), f"Mean CKA per task cluster ({kernel} kernel)")
    for ax, model in zip(axes, models):
        sub = rows[rows["experimental_model"] == model]
        shade_bands(ax, layer_map)
        for cluster, part in sub.groupby("cluster"):
            _curve(ax, part, np.arange(layer_map.num_layers), label=cluster)
        ax.set_title(model)
        _layer_axis(ax, layer_map.num_layers)
    axes[0].set_ylabel("mean CKA")
    axes[-1].legend(fontsize=7, loc="best")
    return save_figure(fig, out_dir / f"cluster_curves_{kernel}", formats)


def _draw_curve(ax, layers, mean, low, high, **style) -> str:
    line = ax.plot(layers, mean, marker=".", **style)[0]
    ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.15, lw=0)
    return line.get_color()


def _curve(ax, rows: pd.DataFrame, layers, **style) -> str:
    return _draw_curve(ax, layers, *task_mean_interval(rows, layers), **style)


def heldout_comparison(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path,
                       formats: Sequence[str]):
    """Like for like: one panel per model holding tasks out, every model averaged over those same tasks."""
    layers = np.arange(layer_map.num_layers)
    sets = heldout_sets(table, kernel, layers)
    if not sets:
        return []
    fig, axes = _panels(len(sets), f"On the held-out tasks, every model ({kernel} kernel)")
    for ax, (holder, tasks, curves) in zip(axes, sets):
        shade_bands(ax, layer_map)
        for model, curve in curves.groupby("experimental_model", sort=False):
            _draw_curve(ax, layers, curve["mean"], curve["low"], curve["high"], ls="--" if model == holder else "-",
                        label=model)
        ax.set_title(f"tasks held out of {holder} (n={len(tasks)})", fontsize=9)
        _layer_axis(ax, layer_map.num_layers)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean CKA (95% interval over tasks)")
    return save_figure(fig, out_dir / f"heldout_comparison_{kernel}", formats)


def ceiling_comparison(table: pd.DataFrame, layer_map: LayerMap, kernel: str, comparison: pd.DataFrame | None,
                       out_dir: Path, formats: Sequence[str]):
    """Each model's mean CKA (interval over tasks) against the seed-to-seed ceiling; x: within seed noise."""
    layers = np.arange(layer_map.num_layers)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    shade_bands(ax, layer_map)
    curves = model_curves(table[table["kernel"] == kernel], layers)
    for model, curve in curves.groupby("experimental_model", sort=False):
        colour = _draw_curve(ax, layers, curve["mean"], curve["low"], curve["high"], label=model)
        noisy = noise_layers(comparison, model, kernel)
        if noisy:
            ax.plot(noisy, curve.set_index("layer").loc[noisy, "mean"], "x", color=colour, ms=9)
    ceiling = ceiling_curve(comparison, kernel, layers)
    if ceiling is not None:
        ax.plot(layers, ceiling["ceiling_cka"], "k--", label="noise ceiling (seed-to-seed)")
        ax.fill_between(layers, ceiling["ceiling_ci_low"], ceiling["ceiling_ci_high"], color="grey", alpha=0.2, lw=0)
    _layer_axis(ax, layer_map.num_layers)
    ax.set_ylabel("mean CKA with the control")
    ax.set_title(f"Models against the noise ceiling; x = within seed noise ({kernel})", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / f"ceiling_{kernel}", formats)


def differences_figure(differences: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path,
                       formats: Sequence[str]):
    """Each model minus the baseline: mean over tasks with its interval, thin per-task lines, and the tasks
    that go against the trend circled (:func:`~taskscope.report.figure_data.against_trend`)."""
    rows = differences[differences["kernel"] == kernel]
    layers = np.arange(layer_map.num_layers)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    shade_bands(ax, layer_map)
    against = against_trend(differences, kernel, layers)
    for model, sub in rows.groupby("experimental_model", sort=False):
        colour = _curve(ax, sub.rename(columns={"cka_diff": "cka"}), layers, lw=2,
                        label=f"{model} - {sub['baseline'].iloc[0]}")
        for _, task_rows in sub.groupby("task"):
            part = task_rows.set_index("layer").reindex(layers)
            ax.plot(layers, part["cka_diff"], color=colour, lw=0.6, alpha=0.35)
        odd = against[against["experimental_model"] == model]
        if not odd.empty:
            ax.plot(odd["layer"], odd["cka_diff"], "o", mfc="none", color=colour, ms=8)
            for _, r in odd.iterrows():
                ax.annotate(r["task"], (r["layer"], r["cka_diff"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8)
    _layer_axis(ax, layer_map.num_layers)
    ax.set_ylabel("CKA difference (mean across tasks)")
    ax.set_title(f"Difference to the baseline; circled: tasks against the trend ({kernel})", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / f"differences_{kernel}", formats)


def heatmaps(table: pd.DataFrame, layer_map: LayerMap, kernel: str, out_dir: Path, formats: Sequence[str]):
    """Per model, task x layer CKA (undefined cells blank)."""
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    tasks = sorted(rows["task"].unique())
    layers = np.arange(layer_map.num_layers)
    low = float(np.floor(np.nanmin(rows["cka"].to_numpy(np.float64)) * 20) / 20) if rows["cka"].notna().any() else 0.0
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 1.2 + 0.22 * len(tasks)), sharey=True,
                             squeeze=False)
    image = None
    for ax, model in zip(axes[0], models):
        grid = rows[rows["experimental_model"] == model].pivot_table(index="task", columns="layer", values="cka",
                                                                       dropna=False).reindex(index=tasks, columns=layers)
        image = ax.imshow(grid.to_numpy(np.float64), aspect="auto", vmin=low, vmax=1, cmap="viridis",
                          extent=(-0.5, len(layers) - 0.5, len(tasks) - 0.5, -0.5))
        ax.set_yticks(range(len(tasks)), labels=tasks, fontsize=6)
        ax.set_title(model, fontsize=9)
        _layer_axis(ax)
    fig.colorbar(image, ax=list(axes[0]), label="CKA")
    fig.suptitle(f"CKA per task and layer; blank: undefined ({kernel} kernel)", y=1.08)
    return save_figure(fig, out_dir / f"heatmap_{kernel}", formats)


def sensitivity_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str, baseline: str | None, out_dir: Path,
                       formats: Sequence[str]):
    """Mean CKA with (solid) and without (dotted) the top-k directions; layers whose conclusion flips marked."""
    data = sensitivity(table, kernel, baseline)
    if data.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    shade_bands(ax, layer_map)
    for model, part in data.groupby("experimental_model", sort=False):
        line = ax.plot(part["layer"], part["cka"], marker=".", label=model)[0]
        ax.plot(part["layer"], part["cka_without_topk"], ls=":", color=line.get_color(),
                label=f"{model} without top-{int(part['top_k'].max())}")
        flips = part[part["flips"].astype(bool)]
        ax.plot(flips["layer"], flips["cka_without_topk"], "D", color=line.get_color(), ms=6, mfc="none")
    _layer_axis(ax, layer_map.num_layers)
    ax.set_ylabel("mean CKA")
    ax.set_title(f"Without the top-k directions; diamonds: conclusion flips ({kernel})", fontsize=9)
    ax.legend(fontsize=6)
    return save_figure(fig, out_dir / f"sensitivity_{kernel}", formats)


def training_figure(logs: pd.DataFrame | None, out_dir: Path, formats: Sequence[str]):
    """Training (solid) and validation (markers) loss of every control and experimental model."""
    curves = training_curves(logs)
    if not curves:
        return []
    fig, axes = _panels(len(curves), "Training loss (lines) and validation loss (diamonds)")
    for ax, (role, part) in zip(axes, curves.items()):
        for model, rows in part.groupby("model", sort=False):
            train, val = rows[rows["kind"] == "train"], rows[rows["kind"] == "eval"]
            line = ax.plot(train["step"], train["loss"], lw=1, marker=".", ms=3, label=model)[0]
            ax.plot(val["step"], val["loss"], "D", ms=4, color=line.get_color())
        ax.set_title(f"{role} models", fontsize=9)
        ax.set_xlabel("step")
        steps = sorted(part["step"].unique())
        if len(steps) <= 10:
            ax.set_xticks(steps, labels=[str(int(x)) for x in steps])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if part["model"].nunique() <= 12:
            ax.legend(fontsize=6)
    axes[0].set_ylabel("loss (nats per target token)")
    return save_figure(fig, out_dir / "training_curves", formats)


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
    _layer_axis(ax, layer_map.num_layers)
    ax.set_title("Layer map")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "layer_map", formats)


def write_figures(table: pd.DataFrame, layer_map: LayerMap, out_dir: Path,
                  formats: Sequence[str] = ("png", "pdf"), differences: pd.DataFrame | None = None,
                  comparison: pd.DataFrame | None = None, training_logs: pd.DataFrame | None = None,
                  baseline: str | None = None) -> list[Path]:
    """Every figure of the module docstring, for every kernel in ``table``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kernel in dict.fromkeys(table["kernel"]):
        paths += cka_distribution(table, layer_map, kernel, out_dir, formats)
        paths += cluster_curves(table, layer_map, kernel, out_dir, formats)
        paths += heldout_comparison(table, layer_map, kernel, out_dir, formats)
        paths += ceiling_comparison(table, layer_map, kernel, comparison, out_dir, formats)
        paths += heatmaps(table, layer_map, kernel, out_dir, formats)
        paths += sensitivity_figure(table, layer_map, kernel, baseline, out_dir, formats)
        if differences is not None and (differences["kernel"] == kernel).any():
            paths += differences_figure(differences, layer_map, kernel, out_dir, formats)
    paths += layer_map_figure(layer_map, out_dir, formats)
    paths += training_figure(training_logs, out_dir, formats)
    return paths
