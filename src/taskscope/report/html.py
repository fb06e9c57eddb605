"""One self-contained ``report.html``: interactive plotly figures with plotly.js inlined (opens offline).

Sections, in order (:data:`SECTIONS`): findings (each claim with its statistic, interval / p-value and
verdict), the controls' validation scores (unlearned ones flagged), every model against the noise ceiling
(layers within seed noise marked), the layers whose conclusion flips without the top-k directions, the layer
map (bands with boundary intervals, the difference curve, mean CKA per band in band order), differences to the
baseline (paired intervals, tasks against the trend), per-task curves, task x layer heatmaps and per-layer
distributions, clusters (with the cluster summary), the like-for-like held-out comparison, training and
validation curves, and provenance (the run manifest and the study config).  Figure data comes from
:mod:`taskscope.report.figure_data`, shared with the static figures.

Every layer axis has integer ticks and the claimed bands shaded; undefined (NaN) layers are gaps; hover
text names model, task, cluster, layer, CKA and interval.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from taskscope.analysis.findings import Finding
from taskscope.analysis.layer_map import BANDS, LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.report.figure_data import (against_trend, band_means, band_spans, ceiling_curve, heldout_sets,
                                          model_curves, noise_layers, sensitivity, task_mean_interval,
                                          training_curves)
from taskscope.report.figures import BAND_COLOURS

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3;text-align:left}td.text{text-align:left}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
h2{margin-top:2em}.supported{background:#d9f2d9}.contradicted{background:#f7d4d4}.inconclusive{background:#f4ecd0}
.flag{color:#b00;font-weight:bold}.scroll{overflow-x:auto;max-width:100%}td.text,th.text{text-align:left}
nav{display:flex;flex-wrap:wrap;gap:.4em 1em;margin:1em 0;padding:.6em 1em;background:#f3f6fa;border-radius:6px}
nav a{color:#1f5fa8;text-decoration:none}details{margin:1em 0}summary{cursor:pointer;color:#1f5fa8}"""

HOVER = ("model %{customdata[0]}<br>task %{customdata[1]} (%{customdata[2]})<br>layer %{x}<br>"
         "CKA %{y:.3f}<br>interval [%{customdata[3]:.3f}, %{customdata[4]:.3f}]<extra></extra>")


def _palette(i: int) -> str:
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")
    return colours[i % len(colours)]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _layer_axes(fig: go.Figure, layer_map: LayerMap, **where) -> None:
    """Integer ticks on the layer axis and the claimed bands shaded (``where``: ``row``/``col`` of a subplot)."""
    step = max(1, layer_map.num_layers // 16)
    fig.update_xaxes(title_text="layer", tick0=0, dtick=step, tickformat="d",
                     range=[-0.5, layer_map.num_layers - 0.5], **where)
    for name, x0, x1 in band_spans(layer_map):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=BAND_COLOURS[name], opacity=0.12, line_width=0,
                      annotation_text=name, annotation_position="top left", **where)


def _band_trace(x, low, high, colour: str, name: str, group: str, show: bool = False) -> go.Scatter:
    """A filled interval between ``low`` and ``high`` (gaps where NaN)."""
    xs = list(x) + list(x)[::-1]
    ys = list(high) + list(low)[::-1]
    return go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0},
                      hoverinfo="skip", name=name, legendgroup=group, showlegend=show)


def _custom(rows: pd.DataFrame, model: str | None = None) -> np.ndarray:
    return np.stack([rows["experimental_model"] if model is None else np.full(len(rows), model),
                     rows["task"], rows["cluster"], rows["ci_low"], rows["ci_high"]], axis=-1)


# ---------------------------------------------------------------- figures
def ceiling_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str,
                   comparison: pd.DataFrame | None) -> go.Figure:
    """Each model's mean CKA across tasks (task interval) against the seed-to-seed ceiling; x = within noise."""
    fig = go.Figure()
    layers = np.arange(layer_map.num_layers)
    curves = model_curves(table[table["kernel"] == kernel], layers)
    for i, (model, curve) in enumerate(curves.groupby("experimental_model", sort=False)):
        colour = _palette(i)
        custom = np.stack([curve["low"], curve["high"], curve["n_tasks"]], axis=-1)
        fig.add_trace(_band_trace(layers, curve["low"], curve["high"], colour, f"{model} interval", model))
        fig.add_trace(go.Scatter(x=layers, y=curve["mean"], mode="lines+markers", name=model, legendgroup=model,
                                 line={"color": colour}, customdata=custom,
                                 hovertemplate=f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}<br>"
                                               "interval [%{customdata[0]:.3f}, %{customdata[1]:.3f}] over "
                                               "%{customdata[2]} tasks<extra></extra>"))
        noisy = noise_layers(comparison, model, kernel)
        if noisy:
            fig.add_trace(go.Scatter(x=noisy, y=curve.set_index("layer").loc[noisy, "mean"], mode="markers",
                                     legendgroup=model, marker={"symbol": "x", "size": 11, "color": colour},
                                     name=f"{model}: within seed noise",
                                     hovertemplate=f"{model}: within seed noise for most tasks<br>layer %{{x}}"
                                                   "<extra></extra>"))
    ceiling = ceiling_curve(comparison, kernel, layers)
    if ceiling is not None:
        fig.add_trace(_band_trace(layers, ceiling["ceiling_ci_low"], ceiling["ceiling_ci_high"], "#555555",
                                  "ceiling interval", "ceiling"))
        fig.add_trace(go.Scatter(x=layers, y=ceiling["ceiling_cka"], mode="lines", name="noise ceiling (seed-to-seed)",
                                 legendgroup="ceiling", line={"color": "#333333", "dash": "dash"},
                                 customdata=ceiling[["ceiling_ci_low", "ceiling_ci_high"]].to_numpy(),
                                 hovertemplate="noise ceiling<br>layer %{x}<br>CKA %{y:.3f}<br>interval "
                                               "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"))
    _layer_axes(fig, layer_map)
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
        colour = _palette(i + 1)
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
        fig.add_trace(_band_trace(layers, low, high, colour, f"{model} interval", model))
        fig.add_trace(go.Scatter(x=layers, y=mean, mode="lines+markers", name=f"{model} - {sub['baseline'].iloc[0]}",
                                 legendgroup=model, line={"color": colour, "width": 2.5},
                                 hovertemplate=f"{model}<br>layer %{{x}}<br>mean difference %{{y:.3f}}<extra></extra>"))
    against = against_trend(differences, kernel, layers)
    if not against.empty:
        custom = np.stack([against["experimental_model"], against["task"], against["cluster"],
                           against["ci_low"], against["ci_high"], np.full(len(against), np.nan)], axis=-1)
        fig.add_trace(go.Scatter(x=against["layer"], y=against["cka_diff"], mode="markers", name="against the trend",
                                 marker={"symbol": "circle-open", "size": 12, "color": "#b00", "line": {"width": 2}},
                                 customdata=custom, hovertemplate="against the trend<br>" + HOVER.replace(
                                     "CKA", "CKA difference")))
    fig.add_hline(y=0, line_color="#888", line_width=1)
    _layer_axes(fig, layer_map)
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
    """Per model, every task's CKA curve with its bootstrap interval (``ci_low``..``ci_high``)."""
    rows, models, fig = _model_panels(table, kernel)
    tasks = list(dict.fromkeys(rows["task"]))
    layers = np.arange(layer_map.num_layers)
    for col, model in enumerate(models, 1):
        for i, task in enumerate(tasks):
            part = rows[(rows["experimental_model"] == model) & (rows["task"] == task)].set_index("layer")
            part = part.reindex(layers).reset_index()
            part = part.assign(experimental_model=model, task=task, cluster=part["cluster"].ffill().bfill())
            colour = _palette(i)
            if part["ci_low"].notna().any():
                fig.add_trace(_band_trace(layers, part["ci_low"], part["ci_high"], colour, task, task), row=1, col=col)
            fig.add_trace(go.Scatter(x=layers, y=part["cka"], mode="lines+markers", name=task, legendgroup=task,
                                     showlegend=col == 1, line={"color": colour}, marker={"size": 4},
                                     customdata=_custom(part), hovertemplate=HOVER), row=1, col=col)
        _layer_axes(fig, layer_map, row=1, col=col)
    fig.update_yaxes(title_text="CKA", row=1, col=1)
    fig.update_layout(title=f"CKA per task with its bootstrap interval ({kernel} kernel)", height=440)
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
        _layer_axes(fig, layer_map, row=1, col=col)
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
        _layer_axes(fig, layer_map, row=1, col=col)
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
            colour = _palette(i)
            fig.add_trace(_band_trace(layers, low, high, colour, cluster, cluster), row=1, col=col)
            fig.add_trace(go.Scatter(x=layers, y=mean, mode="lines+markers", name=cluster, legendgroup=cluster,
                                     showlegend=col == 1, line={"color": colour},
                                     customdata=np.stack([low, high], axis=-1),
                                     hovertemplate=f"model {model}<br>cluster {cluster}<br>layer %{{x}}<br>"
                                                   "mean CKA %{y:.3f}<br>interval [%{customdata[0]:.3f}, "
                                                   "%{customdata[1]:.3f}]<extra></extra>"), row=1, col=col)
        _layer_axes(fig, layer_map, row=1, col=col)
    fig.update_layout(title=f"Mean CKA per task cluster ({kernel} kernel)", height=420)
    return fig


def heldout_figures(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> list[go.Figure]:
    """Like for like: for each model with held-out tasks, every model averaged over those same tasks."""
    figures = []
    layers = np.arange(layer_map.num_layers)
    for holder, tasks, curves in heldout_sets(table, kernel, layers):
        fig = go.Figure()
        for i, (model, curve) in enumerate(curves.groupby("experimental_model", sort=False)):
            colour = _palette(i)
            custom = np.stack([curve["low"], curve["high"], curve["n_tasks"]], axis=-1)
            fig.add_trace(_band_trace(layers, curve["low"], curve["high"], colour, model, model))
            fig.add_trace(go.Scatter(x=layers, y=curve["mean"], mode="lines+markers", name=model, legendgroup=model,
                                     line={"color": colour, "dash": "dash" if model == holder else "solid"},
                                     customdata=custom,
                                     hovertemplate=f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}<br>"
                                                   "interval [%{customdata[0]:.3f}, %{customdata[1]:.3f}] over "
                                                   "%{customdata[2]} tasks<extra></extra>"))
        _layer_axes(fig, layer_map)
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
        colour, k = _palette(i), int(part["top_k"].max())
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
    _layer_axes(fig, layer_map)
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
            colour = _palette(i)
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
        fig.add_trace(_band_trace(layers, layer_map.difference_low, layer_map.difference_high, "#000000",
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
    _layer_axes(fig, layer_map)
    fig.update_layout(title=title, yaxis_title=y_title, height=380)
    return fig


# ---------------------------------------------------------------- tables
def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def findings_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return "<p>No findings were computed.</p>"
    rows = []
    for f in findings:
        interval = "–" if f.interval is None else f"[{_fmt(f.interval[0])}, {_fmt(f.interval[1])}]"
        rows.append(f"<tr><th>{html.escape(f.id)}</th><td class='text'>{html.escape(f.claim)}</td>"
                    f"<td class='text'>{html.escape(f.statistic)}</td><td>{_fmt(f.value)}</td><td>{interval}</td>"
                    f"<td>{_fmt(f.p_value)}</td><td>{f.n}</td><td class='{f.verdict}'>{f.verdict}</td>"
                    f"<td class='text'>{html.escape(f.reason)}</td></tr>")
    return ("<table><tr><th>id</th><th>hypothesis</th><th>statistic</th><th>value</th><th>interval</th>"
            "<th>p</th><th>n</th><th>verdict</th><th>why</th></tr>" + "".join(rows) + "</table>")


def controls_section(controls: pd.DataFrame | None) -> str:
    if controls is None or controls.empty:
        return "<p>No control scores.</p>"
    missing = pd.Series(np.nan, index=controls.index)
    if "loss_gain_ci_low" in controls:
        controls = controls.assign(loss_gain_interval=[
            f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(controls.get("loss_gain_ci_low", missing),
                                                          controls.get("loss_gain_ci_high", missing))])
    columns = ["task", "seed", "steps", "stop_reason", "n_validation", "base_loss", "control_loss", "loss_gain",
               "loss_gain_interval", "base_rouge_l", "control_rouge_l", "base_exact_match",
               "control_exact_match", "learned"]
    # metric columns the run did not compute (all empty) are left out
    columns = [c for c in columns if c in controls and (controls[c].notna().any() or c in ("task", "learned"))]
    failed = controls.loc[~controls["learned"].astype(bool), "item"].tolist()
    note = (f"<p class='flag'>Not learned (loss gain at most the margin): {html.escape(', '.join(map(str, failed)))}."
            " Their rows compare with a model that is not a specialist.</p>" if failed else
            "<p>Every control beats the base model on its task's validation examples by more than the margin.</p>")
    return note + frame_table(controls[columns], text=("task", "stop_reason"), flag="learned")


def frame_table(frame: pd.DataFrame, *, text: Sequence[str] = (), flag: str | None = None) -> str:
    """A DataFrame as an HTML table (``text`` columns left-aligned; ``flag``: a boolean column, false in red)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            css = "text" if c in text else ""
            if c == flag and not bool(row[c]):
                css = "flag"
            cells.append(f"<td class='{css}'>{_fmt(row[c])}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def against_section(differences: pd.DataFrame | None, layer_map: LayerMap, kernel: str) -> str:
    if differences is None or differences.empty:
        return ""
    against = against_trend(differences, kernel, np.arange(layer_map.num_layers))
    if against.empty:
        return ("<p>No task goes against the trend: at no layer whose mean difference has an interval excluding 0 "
                "does a task's own paired interval lie on the other side of 0.</p>")
    shown = against.assign(trend=against["trend"].map({1: "above baseline", -1: "below baseline"}))
    return ("<p>Tasks against the trend (the model's mean difference has an interval excluding 0, but the task's "
            "own paired interval lies on the other side of 0):</p>"
            + frame_table(shown.drop(columns=["baseline"]), text=("experimental_model", "task", "cluster", "trend")))


def sensitivity_section(table: pd.DataFrame, kernel: str, baseline: str | None) -> str:
    data = sensitivity(table, kernel, baseline)
    if data.empty:
        return "<p>No top-k sensitivity columns in this run's table.</p>"
    k = int(data["top_k"].max())
    flips = data[data["flips"].astype(bool)]
    intro = (f"<p>Per layer, CKA recomputed with the top-{k} principal directions of each side removed (massive "
             "activations concentrate there). A layer's conclusion <em>flips</em> when the sign of the model's mean "
             f"difference to the baseline ({html.escape(str(baseline))}) changes without those directions.</p>")
    if flips.empty:
        return intro + "<p><strong>No layer's conclusion flips</strong> without the top-k directions.</p>"
    listed = "; ".join(f"{html.escape(m)}: layers {', '.join(str(int(x)) for x in part['layer'])}"
                       for m, part in flips.groupby("experimental_model", sort=False))
    return (intro + f"<p class='flag'>Conclusion flips without the top-{k} directions - {listed}.</p>"
            + frame_table(flips.drop(columns=["flips"]), text=("experimental_model",)))


def cluster_section(cluster_summary: pd.DataFrame | None, layer_map: LayerMap, kernel: str) -> str:
    """Mean CKA per model and cluster in each claimed band and over all defined layers."""
    if cluster_summary is None or cluster_summary.empty:
        return ""
    rows = cluster_summary[(cluster_summary["kernel"] == kernel) & cluster_summary["mean"].notna()]
    if rows.empty:
        return ""
    rows = rows.assign(band=rows["layer"].map(lambda layer: layer_map.band_of(int(layer))
                                              if 0 <= int(layer) < layer_map.num_layers else None))
    out = rows.groupby(["experimental_model", "cluster"], sort=False).agg(
        tasks=("n_tasks", "max"), all_layers=("mean", "mean"))
    for band in BANDS:
        part = rows[rows["band"] == band]
        if not part.empty:
            out[band] = part.groupby(["experimental_model", "cluster"], sort=False)["mean"].mean()
    return ("<p>Cluster summary (<code>cluster_summary.csv</code>): mean CKA per cluster over all defined layers "
            "and within each claimed band.</p>"
            + frame_table(out.reset_index(), text=("experimental_model", "cluster")))


def manifest_section(manifest: pd.DataFrame | None) -> str:
    if manifest is None or manifest.empty:
        return "<p>No manifest recorded.</p>"
    return frame_table(manifest, text=("section", "name", "value"))


def bands_section(layer_map: LayerMap) -> str:
    rows = []
    for name in BANDS:
        start, stop = getattr(layer_map, name)
        info = layer_map.evidence.get(name, {})
        starts, stops = info.get("start_interval"), info.get("stop_interval")
        rows.append(f"<tr><th>{name}</th><td>{start}</td><td>{stop}</td><td>{stop - start}</td>"
                    f"<td>{'–' if not starts else f'{starts[0]}–{starts[1]}'}</td>"
                    f"<td>{'–' if not stops else f'{stops[0]}–{stops[1]}'}</td>"
                    f"<td>{_fmt(info.get('p_value'))}</td><td>{_fmt(info.get('claimed')) if info else '–'}</td>"
                    f"<td class='text'>{html.escape(layer_map.describe(name))}</td></tr>")
    undefined = ", ".join(map(str, layer_map.undefined)) or "none"
    return ("<table><tr><th>band</th><th>start</th><th>stop</th><th>layers</th><th>start interval</th>"
            "<th>stop interval</th><th>p</th><th>claimed</th><th>reads</th></tr>" + "".join(rows) + "</table>"
            f"<p>Undefined layers (no band): {undefined}.</p>")


RULE_TEXT = {
    "changepoint": """<p>Rule <code>changepoint</code>: the difference curve (reference minus baseline model, mean over
tasks) is cut into at most three consecutive segments: <em>shared</em> (the prefix where the instruction-tuned model
lies below the pre-trained one), <em>transition</em> (a rising line) and <em>refinement</em> (a constant level).  A
segment is claimed only if a sign-flip randomisation test over tasks, repeating the whole segmentation, finds it
significant; unclaimed layers belong to no band.  Boundary intervals come from resampling tasks.  Bands are half-open
layer ranges [start, stop).</p>""",
    "threshold": """<p>Rule <code>threshold</code>: shared = the leading layers whose mean CKA across tasks is at least
<code>shared_min_cka</code> and whose spread is at most <code>max_spread</code>; refinement = the trailing layers whose
mean CKA is below <code>refinement_max_cka</code> or whose spread exceeds <code>max_spread</code>; transition = the
layers in between (possibly none).  Bands are half-open layer ranges [start, stop).</p>""",
}


class _Blocks:
    """Plotly figures as HTML blocks; the first one carries plotly.js inline, the others reuse it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure | None) -> str:
        if fig is None:
            return ""
        self.count += 1
        config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
        return fig.to_html(full_html=False, include_plotlyjs=self.count == 1, config=config)


SECTIONS = (("findings", "Findings"), ("controls", "Controls: are they specialists?"),
            ("ceiling", "Models against the noise ceiling"), ("robustness", "Robustness to dominating directions"),
            ("layer-map", "Layer map"), ("differences", "Differences to the baseline"),
            ("tasks", "Per task: curves, heatmaps, distributions"), ("clusters", "Clusters"),
            ("heldout", "Held-out tasks, like for like"), ("training", "Training and validation curves"),
            ("provenance", "Provenance"))


def render_html(table: pd.DataFrame, layer_map: LayerMap, *, title: str, config_text: str,
                findings: Sequence[Finding] = (), controls: pd.DataFrame | None = None,
                comparison: pd.DataFrame | None = None, differences: pd.DataFrame | None = None,
                cluster_summary: pd.DataFrame | None = None, training_logs: pd.DataFrame | None = None,
                manifest: pd.DataFrame | None = None, baseline: str | None = None) -> str:
    """The report as one HTML string, sections in the order of :data:`SECTIONS` (module docstring)."""
    kernels = list(dict.fromkeys(table["kernel"]))
    baseline = baseline or layer_map.params.get("baseline_model")
    block = _Blocks()
    params = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in layer_map.params.items())
    summary = (f"<p>{table['experimental_model'].nunique()} experimental models, {table['task'].nunique()} tasks in "
               f"{table['cluster'].nunique()} clusters, {table['layer'].nunique()} layers (0 = embeddings), kernels: "
               f"{html.escape(', '.join(kernels))}. Hover over any curve for model, task, cluster, layer, CKA and "
               "its interval; shaded intervals are 95% over tasks for means, the bootstrap interval for one task.</p>")
    toc = "".join(f"<a href='#{key}'>{html.escape(name)}</a>" for key, name in SECTIONS)
    bands = band_means(table, layer_map)
    rule = RULE_TEXT.get(layer_map.params.get("rule", "threshold"), "")
    sections = {
        "findings": "<p>Each claim of the paper as a hypothesis tested on this run; verdicts are <em>supported</em>, "
                    "<em>contradicted</em> or <em>inconclusive at this n</em>.</p>" + findings_table(findings),
        "controls": "<p>Validation loss (nats per target token) and task metrics of every control and of the base "
                    "model on the control's task's validation examples.</p>" + controls_section(controls),
        "ceiling": "<p>The dashed line is the seed-to-seed CKA of replicate controls (same task, another training "
                   "seed): a model-control similarity inside its interval cannot be told apart from training noise. "
                   "Crosses mark layers where most tasks are within seed noise.</p>"
                   + "".join(block(ceiling_figure(table, layer_map, k, comparison)) for k in kernels),
        "robustness": "".join(sensitivity_section(table, k, baseline) + block(sensitivity_plot(table, layer_map, k,
                                                                                                baseline))
                              for k in kernels),
        "layer-map": rule + bands_section(layer_map)
                     + "<h3>Mean CKA per band</h3>"
                     + (frame_table(bands.reset_index(), text=("experimental_model",)) if not bands.empty
                        else "<p>No band claimed.</p>")
                     + block(layer_map_plot(layer_map))
                     + f"<details><summary>Layer-map parameters</summary><table>{params}</table></details>",
        "differences": "".join(block(difference_figure(differences, layer_map, k)) + against_section(differences,
                                                                                                    layer_map, k)
                               for k in kernels) if differences is not None and not differences.empty
                       else "<p>No differences (a single experimental model, or no baseline).</p>",
        "tasks": "".join(block(task_curves_figure(table, layer_map, k)) + block(heatmap_figure(table, layer_map, k))
                         + block(distribution_figure(table, layer_map, k)) for k in kernels),
        "clusters": "".join(block(cluster_figure(table, layer_map, k)) + cluster_section(cluster_summary, layer_map, k)
                            for k in kernels),
        "heldout": "".join(block(f) for k in kernels for f in heldout_figures(table, layer_map, k))
                   or "<p>No experimental model holds tasks out.</p>",
        "training": block(training_plot(training_logs)) or "<p>No training logs found.</p>",
        "provenance": "<p>What produced this run (<code>manifest.json</code>).</p>" + manifest_section(manifest)
                      + f"<h3>Study config</h3><pre>{html.escape(config_text)}</pre>",
    }
    body = "".join(f"<section id='{key}'><h2>{html.escape(name)}</h2>{sections[key]}</section>"
                   for key, name in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>{summary}<nav>{toc}</nav>
{body}
</body></html>
"""


def write_html(table: pd.DataFrame, layer_map: LayerMap, path: Path, *, title: str, config_text: str,
               **sections) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(table, layer_map, title=title, config_text=config_text, **sections))
    return path
