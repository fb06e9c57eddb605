"""One self-contained ``report.html``: interactive plotly figures with plotly.js inlined (opens offline).

Sections, in order (:data:`SECTIONS`): findings (each claim with its statistic, interval / p-value and
verdict), the controls' validation scores (unlearned ones flagged), every model against the noise ceiling
(layers within seed noise marked), the layers whose conclusion flips without the top-k directions, the layer
map (bands with boundary intervals, the difference curve, mean CKA per band in band order), differences to the
baseline (paired intervals, tasks against the trend), per-task curves, task x layer heatmaps and per-layer
distributions, clusters (with the cluster summary), the like-for-like held-out comparison, training and
validation curves, and provenance (the run manifest and the study config).  Figure data comes from
:mod:`taskscope.report.figure_data`, shared with the static figures.

`render_html`, in order: build every figure (plotly) and every table (`templating.Table`) of the sections,
then render ``templates/mossa.html``, which draws section ``key`` with ``templates/mossa/<key>.html`` in
:data:`SECTIONS` order (the prose lives there; `templating.render` inlines plotly.js with the first figure).

Every layer axis has integer ticks and the claimed bands shaded; undefined (NaN) layers are gaps; hover
text names model, task, cluster, layer, CKA and interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from taskscope.analysis.findings import Finding
from taskscope.analysis.layer_map import BANDS, LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.report.figure_data import (against_trend, band_means, ceiling_curve, heldout_sets,
                                          model_curves, noise_layers, sensitivity, task_mean_interval,
                                          training_curves)
from taskscope.report.plotly_parts import band_trace, curve_with_band, layer_axes, palette
from taskscope.report.templating import Table, fmt, render

HOVER = ("model %{customdata[0]}<br>task %{customdata[1]} (%{customdata[2]})<br>layer %{x}<br>"
         "CKA %{y:.3f}<br>interval [%{customdata[3]:.3f}, %{customdata[4]:.3f}]<extra></extra>")


def _custom(rows: pd.DataFrame, model: str | None = None) -> np.ndarray:
    return np.stack([rows["experimental_model"] if model is None else np.full(len(rows), model),
                     rows["task"], rows["cluster"], rows["ci_low"], rows["ci_high"]], axis=-1)


def _model_curve(layers, model: str, curve: pd.DataFrame, colour: str, **line) -> tuple[go.Scatter, go.Scatter]:
    """One model's `figure_data.model_curves` rows as its interval band and its mean curve (hover: n tasks)."""
    return curve_with_band(layers, curve["mean"], curve["low"], curve["high"], colour, model, line=line,
                           customdata=np.stack([curve["low"], curve["high"], curve["n_tasks"]], axis=-1),
                           hovertemplate=f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}<br>interval "
                                         "[%{customdata[0]:.3f}, %{customdata[1]:.3f}] over %{customdata[2]} tasks"
                                         "<extra></extra>")


# ---------------------------------------------------------------- figures
def ceiling_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str,
                   comparison: pd.DataFrame | None) -> go.Figure:
    """Each model's mean CKA across tasks (task interval) against the seed-to-seed ceiling; x = within noise."""
    fig = go.Figure()
    layers = np.arange(layer_map.num_layers)
    curves = model_curves(table[table["kernel"] == kernel], layers)
    for i, (model, curve) in enumerate(curves.groupby("experimental_model", sort=False)):
        colour = palette(i)
        fig.add_traces(_model_curve(layers, model, curve, colour))
        noisy = noise_layers(comparison, model, kernel)
        if noisy:
            fig.add_trace(go.Scatter(x=noisy, y=curve.set_index("layer").loc[noisy, "mean"], mode="markers",
                                     legendgroup=model, marker={"symbol": "x", "size": 11, "color": colour},
                                     name=f"{model}: within seed noise",
                                     hovertemplate=f"{model}: within seed noise for most tasks<br>layer %{{x}}"
                                                   "<extra></extra>"))
    ceiling = ceiling_curve(comparison, kernel, layers)
    if ceiling is not None:
        fig.add_trace(band_trace(layers, ceiling["ceiling_ci_low"], ceiling["ceiling_ci_high"], "#555555",
                                  "ceiling interval", "ceiling"))
        fig.add_trace(go.Scatter(x=layers, y=ceiling["ceiling_cka"], mode="lines", name="noise ceiling (seed-to-seed)",
                                 legendgroup="ceiling", line={"color": "#333333", "dash": "dash"},
                                 customdata=ceiling[["ceiling_ci_low", "ceiling_ci_high"]].to_numpy(),
                                 hovertemplate="noise ceiling<br>layer %{x}<br>CKA %{y:.3f}<br>interval "
                                               "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"))
    layer_axes(fig, layer_map)
    fig.update_layout(title=f"Mean CKA with the task's control, against the noise ceiling ({kernel} kernel)",
                      yaxis_title="CKA", height=440)
    return fig


def difference_figure(differences: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure | None:
    """Per experimental model, the mean across tasks of CKA minus the baseline's, with its task interval."""
    rows = differences[differences["kernel"] == kernel] if len(differences) else differences
    if rows is None or rows.empty:
        return None
    layers = np.arange(layer_map.num_layers)
    fig = go.Figure()
    has_ci = {"ci_low", "ci_high"} <= set(rows.columns)
    for i, (model, sub) in enumerate(rows.groupby("experimental_model", sort=False)):
        colour = palette(i + 1)
        mean, low, high = task_mean_interval(sub.rename(columns={"cka_diff": "cka"}), layers)
        for task, part in sub.groupby("task"):
            part = part.set_index("layer").reindex(layers)
            low_t = part["ci_low"] if has_ci else part["cka_diff"]
            high_t = part["ci_high"] if has_ci else part["cka_diff"]
            p = part["p_value"] if "p_value" in part else pd.Series(np.nan, index=layers)
            custom = np.stack([np.full(len(layers), model), np.full(len(layers), task), part["cluster"].fillna(""),
                               low_t, high_t, p], axis=-1)
            fig.add_trace(go.Scatter(x=layers, y=part["cka_diff"], mode="lines", line={"color": colour, "width": 0.7},
                                     opacity=0.35, legendgroup=model, showlegend=False, customdata=custom,
                                     hovertemplate=HOVER.replace("CKA", "CKA difference").replace(
                                         "<extra>", "<br>p %{customdata[5]:.3g}<extra>")))
        fig.add_traces(curve_with_band(layers, mean, low, high, colour, f"{model} - {sub['baseline'].iloc[0]}",
                                       group=model, line={"width": 2.5},
                                       hovertemplate=f"{model}<br>layer %{{x}}<br>mean difference %{{y:.3f}}"
                                                     "<extra></extra>"))
    against = against_trend(differences, kernel, layers)
    if not against.empty:
        custom = np.stack([against["experimental_model"], against["task"], against["cluster"],
                           against["ci_low"], against["ci_high"], np.full(len(against), np.nan)], axis=-1)
        fig.add_trace(go.Scatter(x=against["layer"], y=against["cka_diff"], mode="markers", name="against the trend",
                                 marker={"symbol": "circle-open", "size": 12, "color": "#b00", "line": {"width": 2}},
                                 customdata=custom, hovertemplate="against the trend<br>" + HOVER.replace(
                                     "CKA", "CKA difference")))
    fig.add_hline(y=0, line_color="#888", line_width=1)
    layer_axes(fig, layer_map)
    fig.update_layout(title=f"Difference to the baseline: mean across tasks (thin: each task; red circles: "
                            f"against the trend) ({kernel} kernel)",
                      yaxis_title="CKA difference", height=440)
    return fig


def _model_panels(table: pd.DataFrame, kernel: str) -> tuple[pd.DataFrame, list[str], go.Figure]:
    """The rows of one kernel, its models in table order, and one panel per model sharing the CKA axis."""
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    return rows, models, make_subplots(rows=1, cols=len(models), shared_yaxes=True, subplot_titles=models)


def task_curves_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure:
    """Per model, every task's CKA curve with its interval (``ci_low``..``ci_high``)."""
    rows, models, fig = _model_panels(table, kernel)
    tasks = list(dict.fromkeys(rows["task"]))
    layers = np.arange(layer_map.num_layers)
    for col, model in enumerate(models, 1):
        for i, task in enumerate(tasks):
            part = rows[(rows["experimental_model"] == model) & (rows["task"] == task)].set_index("layer")
            part = part.reindex(layers).reset_index()
            part = part.assign(experimental_model=model, task=task, cluster=part["cluster"].ffill().bfill())
            band, curve = curve_with_band(layers, part["cka"], part["ci_low"], part["ci_high"], palette(i), task,
                                          showlegend=col == 1, marker={"size": 4}, customdata=_custom(part),
                                          hovertemplate=HOVER)
            for trace in (band, curve) if part["ci_low"].notna().any() else (curve,):
                fig.add_trace(trace, row=1, col=col)
        layer_axes(fig, layer_map, row=1, col=col)
    fig.update_yaxes(title_text="CKA", row=1, col=1)
    fig.update_layout(title=f"CKA per task with its interval ({kernel} kernel)", height=440)
    return fig


def heatmap_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure:
    """Per model, task x layer CKA; one colour scale from the lowest CKA (rounded down to 0.05) to 1."""
    rows, models, fig = _model_panels(table, kernel)
    low = float(np.floor(np.nanmin(rows["cka"].to_numpy(np.float64)) * 20) / 20) if rows["cka"].notna().any() else 0.0
    layers = np.arange(layer_map.num_layers)
    tasks = sorted(rows["task"].unique())
    cluster_of = rows.drop_duplicates("task").set_index("task")["cluster"]
    for col, model in enumerate(models, 1):
        sub = rows[rows["experimental_model"] == model]
        grids = {value: sub.pivot_table(index="task", columns="layer", values=value, dropna=False)
                 .reindex(index=tasks, columns=layers) for value in ("cka", "ci_low", "ci_high")}
        clusters = np.repeat(cluster_of.reindex(tasks).to_numpy()[:, None], len(layers), axis=1)
        custom = np.dstack([clusters, grids["ci_low"].to_numpy(), grids["ci_high"].to_numpy()])
        fig.add_trace(go.Heatmap(z=grids["cka"].to_numpy(), x=layers, y=tasks, zmin=low, zmax=1, customdata=custom,
                                 colorscale="Viridis", showscale=col == len(models),
                                 hovertemplate=f"model {model}<br>task %{{y}} (%{{customdata[0]}})<br>layer %{{x}}<br>"
                                               "CKA %{z:.3f}<br>interval [%{customdata[1]:.3f}, "
                                               "%{customdata[2]:.3f}]<extra></extra>"), row=1, col=col)
        layer_axes(fig, layer_map, row=1, col=col)
    fig.update_yaxes(type="category", dtick=1, automargin=True)
    fig.update_layout(title=f"CKA per task and layer; blank: undefined ({kernel} kernel)",
                      height=max(320, 160 + 26 * rows["task"].nunique()))
    return fig


def distribution_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure:
    rows, models, fig = _model_panels(table, kernel)
    for col, model in enumerate(models, 1):
        sub = rows[(rows["experimental_model"] == model) & rows["cka"].notna()]
        fig.add_trace(go.Box(x=sub["layer"], y=sub["cka"], name=model, boxpoints="all", jitter=0.3, marker_size=3,
                             showlegend=False, customdata=_custom(sub), hovertemplate=HOVER), row=1, col=col)
        layer_axes(fig, layer_map, row=1, col=col)
    fig.update_yaxes(title_text="CKA", row=1, col=1)
    fig.update_layout(title=f"CKA with each task's control model, across tasks ({kernel} kernel)", height=420)
    return fig


def cluster_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure:
    rows, models, fig = _model_panels(table, kernel)
    clusters = sorted(rows["cluster"].unique())
    layers = np.arange(layer_map.num_layers)
    for col, model in enumerate(models, 1):
        for i, cluster in enumerate(clusters):
            sub = rows[(rows["experimental_model"] == model) & (rows["cluster"] == cluster)]
            mean, low, high = task_mean_interval(sub, layers)
            for trace in curve_with_band(layers, mean, low, high, palette(i), cluster, showlegend=col == 1,
                                         customdata=np.stack([low, high], axis=-1),
                                         hovertemplate=f"model {model}<br>cluster {cluster}<br>layer %{{x}}<br>"
                                                       "mean CKA %{y:.3f}<br>interval [%{customdata[0]:.3f}, "
                                                       "%{customdata[1]:.3f}]<extra></extra>"):
                fig.add_trace(trace, row=1, col=col)
        layer_axes(fig, layer_map, row=1, col=col)
    fig.update_layout(title=f"Mean CKA per task cluster ({kernel} kernel)", height=420)
    return fig


def heldout_figures(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> list[go.Figure]:
    """Like for like: for each model with held-out tasks, every model averaged over those same tasks."""
    figures = []
    layers = np.arange(layer_map.num_layers)
    for holder, tasks, curves in heldout_sets(table, kernel, layers):
        fig = go.Figure()
        for i, (model, curve) in enumerate(curves.groupby("experimental_model", sort=False)):
            fig.add_traces(_model_curve(layers, model, curve, palette(i),
                                        dash="dash" if model == holder else "solid"))
        layer_axes(fig, layer_map)
        fig.update_layout(title=f"On the tasks held out of {holder} ({', '.join(tasks)}): every model "
                                f"({kernel} kernel)", yaxis_title="mean CKA", height=420)
        figures.append(fig)
    return figures


def sensitivity_plot(table: pd.DataFrame, layer_map: LayerMap, kernel: str, baseline: str | None) -> go.Figure | None:
    """Mean CKA with (solid) and without (dotted) the top-k directions; diamonds: the conclusion flips."""
    data = sensitivity(table, kernel, baseline)
    if data.empty:
        return None
    fig = go.Figure()
    for i, (model, part) in enumerate(data.groupby("experimental_model", sort=False)):
        colour, k = palette(i), int(part["top_k"].max())
        custom = part[["var_share_exp", "var_share_ctrl", "diff", "diff_without_topk"]].to_numpy(np.float64)
        hover = (f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}<br>top-{k} variance share: experimental "
                 "%{customdata[0]:.2f}, control %{customdata[1]:.2f}<br>difference to the baseline "
                 "%{customdata[2]:.3f}, without top-k %{customdata[3]:.3f}<extra></extra>")
        fig.add_trace(go.Scatter(x=part["layer"], y=part["cka"], mode="lines+markers", name=model, legendgroup=model,
                                 line={"color": colour}, customdata=custom, hovertemplate=hover))
        fig.add_trace(go.Scatter(x=part["layer"], y=part["cka_without_topk"], mode="lines+markers",
                                 name=f"{model} without top-{k}", legendgroup=model, customdata=custom,
                                 line={"color": colour, "dash": "dot"}, hovertemplate=hover))
        flips = part[part["flips"].astype(bool)]
        if not flips.empty:
            fig.add_trace(go.Scatter(x=flips["layer"], y=flips["cka_without_topk"], mode="markers",
                                     name=f"{model}: conclusion flips", legendgroup=model,
                                     marker={"symbol": "diamond-open", "size": 13, "color": colour,
                                             "line": {"width": 2}},
                                     hovertemplate=f"{model}: the sign of the difference to the baseline flips "
                                                   "without the top-k directions<br>layer %{x}<extra></extra>"))
    layer_axes(fig, layer_map)
    fig.update_layout(title=f"Robustness to a few dominating directions ({kernel} kernel)", yaxis_title="mean CKA",
                      height=420)
    return fig


def training_plot(logs: pd.DataFrame | None) -> go.Figure | None:
    """Training (lines) and validation (markers) loss per step, one panel per role (control / experimental)."""
    curves = training_curves(logs)
    if not curves:
        return None
    fig = make_subplots(rows=1, cols=len(curves), subplot_titles=[f"{role} models" for role in curves])
    for col, (role, part) in enumerate(curves.items(), 1):
        for i, (model, rows) in enumerate(part.groupby("model", sort=False)):
            colour = palette(i)
            for kind, style in (("train", {"mode": "lines+markers", "marker": {"color": colour, "size": 4}}),
                                ("eval", {"mode": "markers", "marker": {"color": colour, "size": 9,
                                                                        "symbol": "diamond"}})):
                sub = rows[rows["kind"] == kind]
                if sub.empty:
                    continue
                label = "training" if kind == "train" else "validation"
                fig.add_trace(go.Scatter(x=sub["step"], y=sub["loss"], name=model, legendgroup=f"{role}/{model}",
                                         showlegend=bool(kind == "train" or not rows["kind"].eq("train").any()),
                                         line={"color": colour}, **style,
                                         hovertemplate=f"{role} {model}<br>{label} loss %{{y:.4f}}<br>step %{{x}}"
                                                       "<extra></extra>"), row=1, col=col)
        top = float(part["step"].max())
        fig.update_xaxes(title_text="step", tickformat="d", tick0=0, dtick=max(1, int(np.ceil(top / 10))), row=1, col=col)
    fig.update_yaxes(title_text="loss (nats per target token)", row=1, col=1)
    fig.update_layout(title="Training loss (lines) and validation loss (diamonds) per step", height=460,
                      legend={"font": {"size": 10}})
    return fig


def layer_map_plot(layer_map: LayerMap) -> go.Figure:
    p = layer_map.params
    layers = np.arange(layer_map.num_layers)
    fig = go.Figure()
    if layer_map.difference:
        fig.add_trace(band_trace(layers, layer_map.difference_low, layer_map.difference_high, "#000000",
                                  "task interval", "diff", show=True))
        fig.add_trace(go.Scatter(x=layers, y=layer_map.difference, mode="lines+markers", line={"color": "black"},
                                 name=f"{p['reference_model']} - {p['baseline_model']}",
                                 hovertemplate="layer %{x}<br>mean difference %{y:.3f}<extra></extra>"))
        fig.add_hline(y=0, line_color="#888", line_width=1)
        title, y_title = "Layer map: the difference curve and its bands (changepoint rule)", "CKA difference"
    else:
        fig.add_trace(go.Scatter(x=layers, y=layer_map.mean_cka, mode="lines+markers", name=f"{p['reference_model']} mean",
                                 error_y={"type": "data", "array": list(layer_map.spread), "visible": True}))
        fig.add_hline(y=p["shared_min_cka"], line_dash="dot", annotation_text="shared_min_cka")
        fig.add_hline(y=p["refinement_max_cka"], line_dash="dot", annotation_text="refinement_max_cka")
        title, y_title = "Layer map (threshold rule)", "CKA"
    layer_axes(fig, layer_map)
    fig.update_layout(title=title, yaxis_title=y_title, height=380)
    return fig


# ---------------------------------------------------------------- section contents for templates/mossa/
def controls_view(controls: pd.DataFrame | None) -> dict | None:
    """The controls' table (metric columns the run did not compute left out) and the controls not learned."""
    if controls is None or controls.empty:
        return None
    if "loss_gain_ci_low" in controls:
        missing = pd.Series(np.nan, index=controls.index)
        controls = controls.assign(loss_gain_interval=[
            f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(controls.get("loss_gain_ci_low", missing),
                                                        controls.get("loss_gain_ci_high", missing))])
    columns = ["task", "seed", "steps", "stop_reason", "n_validation", "base_loss", "control_loss", "loss_gain",
               "loss_gain_interval", "base_rouge_l", "control_rouge_l", "base_exact_match",
               "control_exact_match", "learned"]
    columns = [c for c in columns if c in controls and (controls[c].notna().any() or c in ("task", "learned"))]
    failed = controls.loc[~controls["learned"].astype(bool), "item"].map(str).tolist()
    return {"failed": failed, "table": Table.of(controls[columns], text=("task", "stop_reason"), flag="learned")}


def against_table(differences: pd.DataFrame, layer_map: LayerMap, kernel: str) -> Table | None:
    """The tasks against the trend (`figure_data.against_trend`), or None when there is none."""
    against = against_trend(differences, kernel, np.arange(layer_map.num_layers))
    if against.empty:
        return None
    shown = against.assign(trend=against["trend"].map({1: "above baseline", -1: "below baseline"}))
    return Table.of(shown.drop(columns=["baseline"]), text=("experimental_model", "task", "cluster", "trend"))


def sensitivity_view(table: pd.DataFrame, kernel: str, baseline: str | None) -> dict | None:
    """The top-k count, the flipping layers per model and their rows; None without sensitivity columns."""
    data = sensitivity(table, kernel, baseline)
    if data.empty:
        return None
    flips = data[data["flips"].astype(bool)]
    return {"k": int(data["top_k"].max()), "baseline": baseline,
            "flips": [(model, [int(x) for x in part["layer"]])
                      for model, part in flips.groupby("experimental_model", sort=False)],
            "table": Table.of(flips.drop(columns=["flips"]), text=("experimental_model",)) if len(flips) else None}


def cluster_table(cluster_summary: pd.DataFrame | None, layer_map: LayerMap, kernel: str) -> Table | None:
    """Mean CKA per model and cluster in each claimed band and over all defined layers."""
    if cluster_summary is None or cluster_summary.empty:
        return None
    rows = cluster_summary[(cluster_summary["kernel"] == kernel) & cluster_summary["mean"].notna()]
    if rows.empty:
        return None
    rows = rows.assign(band=rows["layer"].map(lambda layer: layer_map.band_of(int(layer))
                                              if 0 <= int(layer) < layer_map.num_layers else None))
    out = rows.groupby(["experimental_model", "cluster"], sort=False).agg(
        tasks=("n_tasks", "max"), all_layers=("mean", "mean"))
    for band in BANDS:
        part = rows[rows["band"] == band]
        if not part.empty:
            out[band] = part.groupby(["experimental_model", "cluster"], sort=False)["mean"].mean()
    return Table.of(out.reset_index(), text=("experimental_model", "cluster"))


def band_rows(layer_map: LayerMap) -> list[dict]:
    """Per band: start, stop, size, boundary intervals, p, claimed and how it reads."""
    rows = []
    for name in BANDS:
        start, stop = getattr(layer_map, name)
        info = layer_map.evidence.get(name, {})
        starts, stops = info.get("start_interval"), info.get("stop_interval")
        rows.append({"name": name, "start": start, "stop": stop, "size": stop - start,
                     "start_interval": f"{starts[0]}–{starts[1]}" if starts else "–",
                     "stop_interval": f"{stops[0]}–{stops[1]}" if stops else "–",
                     "p": fmt(info.get("p_value")), "claimed": fmt(info.get("claimed")) if info else "–",
                     "reads": layer_map.describe(name)})
    return rows


def _optional_table(frame: pd.DataFrame | None, text: Sequence[str]) -> Table | None:
    return None if frame is None or frame.empty else Table.of(frame, text=text)


SECTIONS = (("findings", "Findings"), ("controls", "Controls: are they specialists?"),
            ("ceiling", "Models against the noise ceiling"), ("robustness", "Robustness to dominating directions"),
            ("layer-map", "Layer map"), ("differences", "Differences to the baseline"),
            ("tasks", "Per task: curves, heatmaps, distributions"), ("clusters", "Clusters"),
            ("heldout", "Held-out tasks, like for like"), ("training", "Training and validation curves"),
            ("provenance", "Provenance"))


def kernel_views(table: pd.DataFrame, layer_map: LayerMap, kernel: str, *, comparison: pd.DataFrame | None,
                 differences: pd.DataFrame | None, cluster_summary: pd.DataFrame | None,
                 baseline: str | None) -> dict:
    """Every per-kernel figure and table of the report, by the name the section templates use."""
    has_differences = differences is not None and not differences.empty
    return {"kernel": kernel, "ceiling": ceiling_figure(table, layer_map, kernel, comparison),
            "sensitivity": sensitivity_view(table, kernel, baseline),
            "sensitivity_plot": sensitivity_plot(table, layer_map, kernel, baseline),
            "difference": difference_figure(differences, layer_map, kernel) if has_differences else None,
            "against": against_table(differences, layer_map, kernel) if has_differences else None,
            "task_curves": task_curves_figure(table, layer_map, kernel),
            "heatmap": heatmap_figure(table, layer_map, kernel),
            "distribution": distribution_figure(table, layer_map, kernel),
            "clusters": cluster_figure(table, layer_map, kernel),
            "cluster_table": cluster_table(cluster_summary, layer_map, kernel),
            "heldout": heldout_figures(table, layer_map, kernel)}


def render_html(table: pd.DataFrame, layer_map: LayerMap, *, title: str, config_text: str,
                findings: Sequence[Finding] = (), controls: pd.DataFrame | None = None,
                comparison: pd.DataFrame | None = None, differences: pd.DataFrame | None = None,
                cluster_summary: pd.DataFrame | None = None, training_logs: pd.DataFrame | None = None,
                manifest: pd.DataFrame | None = None, baseline: str | None = None) -> str:
    """The report as one HTML string: figures and tables per section (:data:`SECTIONS` order), then
    ``templates/mossa.html`` lays them out (module docstring)."""
    kernels = list(dict.fromkeys(table["kernel"]))
    baseline = baseline or layer_map.params.get("baseline_model")
    bands = band_means(table, layer_map)
    return render("mossa.html", title=title, sections=SECTIONS, kernels=kernels, config_text=config_text,
                  counts={"models": table["experimental_model"].nunique(), "tasks": table["task"].nunique(),
                          "clusters": table["cluster"].nunique(), "layers": table["layer"].nunique()},
                  findings=findings, controls=controls_view(controls),
                  per_kernel=[kernel_views(table, layer_map, k, comparison=comparison, differences=differences,
                                           cluster_summary=cluster_summary, baseline=baseline) for k in kernels],
                  has_differences=differences is not None and not differences.empty,
                  rule=layer_map.params.get("rule", "threshold"), bands=band_rows(layer_map),
                  undefined=", ".join(map(str, layer_map.undefined)) or "none",
                  band_means=None if bands.empty else Table.of(bands.reset_index(), text=("experimental_model",)),
                  layer_map_plot=layer_map_plot(layer_map), params=layer_map.params,
                  training=training_plot(training_logs),
                  manifest=_optional_table(manifest, ("section", "name", "value")))


def write_html(table: pd.DataFrame, layer_map: LayerMap, path: Path, *, title: str, config_text: str,
               **sections) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(table, layer_map, title=title, config_text=config_text, **sections))
    return path
