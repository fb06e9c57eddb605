"""One self-contained ``report.html``: interactive plotly figures with plotly.js inlined (opens offline).

Sections, in order: findings (each claim with its statistic, interval / p-value and verdict), the
controls' validation scores, the layer map (bands with boundary intervals, the difference curve, mean CKA
per band in band order), experimental models against the noise ceiling, differences to the baseline,
per-task curves with their bootstrap intervals, task x layer heatmaps, per-layer distributions, clusters,
the like-for-like held-out comparison, and the study config.

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

from taskscope.analysis.ceiling import noise_share
from taskscope.analysis.findings import Finding
from taskscope.analysis.layer_map import BANDS, LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import BAND_COLOURS, task_mean_interval

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.text{text-align:left}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
h2{margin-top:2em}.supported{background:#d9f2d9}.contradicted{background:#f7d4d4}.inconclusive{background:#f4ecd0}
.flag{color:#b00;font-weight:bold}"""

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
    for name in BANDS:
        start, stop = getattr(layer_map, name)
        if stop > start:
            fig.add_vrect(x0=start - 0.5, x1=stop - 0.5, fillcolor=BAND_COLOURS[name], opacity=0.12, line_width=0,
                          annotation_text=name, annotation_position="top left", **where)


def _band_trace(x, low, high, colour: str, name: str, group: str, show: bool = False) -> go.Scatter:
    """A filled interval between ``low`` and ``high`` (gaps where NaN)."""
    xs = list(x) + list(x)[::-1]
    ys = list(high) + list(low)[::-1]
    return go.Scatter(x=xs, y=ys, fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0},
                      hoverinfo="skip", name=name, legendgroup=group, showlegend=show)


def _custom(rows: pd.DataFrame, model: str | None = None) -> np.ndarray:
    return np.stack([rows["experimental_model"] if model is None else np.full(len(rows), model),
                     rows["task"], rows["cluster"], rows["ci_low"], rows["ci_high"]], axis=-1)


# ---------------------------------------------------------------- figures
def ceiling_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str,
                   comparison: pd.DataFrame | None) -> go.Figure:
    """Each model's mean CKA across tasks (task interval) against the seed-to-seed ceiling; x = within noise."""
    rows = table[table["kernel"] == kernel]
    fig = go.Figure()
    layers = np.arange(layer_map.num_layers)
    for i, (model, sub) in enumerate(rows.groupby("experimental_model", sort=False)):
        mean, low, high = task_mean_interval(sub, layers)
        colour = _palette(i)
        fig.add_trace(_band_trace(layers, low, high, colour, f"{model} interval", model))
        fig.add_trace(go.Scatter(x=layers, y=mean, mode="lines+markers", name=model, legendgroup=model,
                                 line={"color": colour},
                                 hovertemplate=f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}<extra></extra>"))
        if comparison is not None and "within_noise" in comparison:
            flags = comparison[(comparison["experimental_model"] == model) & (comparison["kernel"] == kernel)]
            share = noise_share(flags)
            noisy = [int(layer) for layer, value in share.items() if value >= 0.5]
            if noisy:
                fig.add_trace(go.Scatter(x=noisy, y=mean[noisy], mode="markers", legendgroup=model,
                                         marker={"symbol": "x", "size": 11, "color": colour},
                                         name=f"{model}: within seed noise",
                                         hovertemplate="within seed noise for most tasks<br>layer %{x}<extra></extra>"))
    if comparison is not None and comparison["ceiling_cka"].notna().any():
        ceiling = comparison[comparison["kernel"] == kernel].drop_duplicates(["task", "layer"])
        by_layer = ceiling.groupby("layer")[["ceiling_cka", "ceiling_ci_low", "ceiling_ci_high"]].mean()
        by_layer = by_layer.reindex(layers)
        fig.add_trace(_band_trace(layers, by_layer["ceiling_ci_low"], by_layer["ceiling_ci_high"], "#555555",
                                  "ceiling interval", "ceiling"))
        fig.add_trace(go.Scatter(x=layers, y=by_layer["ceiling_cka"], mode="lines", name="noise ceiling (seed-to-seed)",
                                 legendgroup="ceiling", line={"color": "#333333", "dash": "dash"},
                                 hovertemplate="ceiling<br>layer %{x}<br>CKA %{y:.3f}<extra></extra>"))
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
    fig.add_hline(y=0, line_color="#888", line_width=1)
    _layer_axes(fig, layer_map)
    fig.update_layout(title=f"Difference to the baseline: mean across tasks (thin: each task) ({kernel} kernel)",
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
    rows, models, fig = _model_panels(table, kernel)
    layers = np.arange(layer_map.num_layers)
    for col, model in enumerate(models, 1):
        grid = rows[rows["experimental_model"] == model].pivot_table(index="task", columns="layer", values="cka",
                                                                       dropna=False).reindex(columns=layers)
        fig.add_trace(go.Heatmap(z=grid.to_numpy(), x=layers, y=list(grid.index), zmin=0, zmax=1,
                                 colorscale="Viridis", showscale=col == len(models),
                                 hovertemplate=f"model {model}<br>task %{{y}}<br>layer %{{x}}<br>CKA %{{z:.3f}}"
                                               "<extra></extra>"), row=1, col=col)
        _layer_axes(fig, layer_map, row=1, col=col)
    fig.update_layout(title=f"CKA per task and layer ({kernel} kernel)", height=120 + 24 * rows["task"].nunique())
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
                                     hovertemplate=f"model {model}<br>cluster {cluster}<br>layer %{{x}}<br>"
                                                   "mean CKA %{y:.3f}<extra></extra>"), row=1, col=col)
        _layer_axes(fig, layer_map, row=1, col=col)
    fig.update_layout(title=f"Mean CKA per task cluster ({kernel} kernel)", height=420)
    return fig


def heldout_figures(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> list[go.Figure]:
    """Like for like: for each model with held-out tasks, every model averaged over those same tasks."""
    rows = table[table["kernel"] == kernel]
    figures = []
    layers = np.arange(layer_map.num_layers)
    for holder, sub in rows.groupby("experimental_model", sort=False):
        tasks = sorted(set(sub.loc[sub["heldout"].astype(bool), "task"]))
        if not tasks:
            continue
        fig = go.Figure()
        for i, (model, part) in enumerate(rows[rows["task"].isin(tasks)].groupby("experimental_model", sort=False)):
            mean, low, high = task_mean_interval(part, layers)
            colour = _palette(i)
            fig.add_trace(_band_trace(layers, low, high, colour, model, model))
            fig.add_trace(go.Scatter(x=layers, y=mean, mode="lines+markers", name=model, legendgroup=model,
                                     line={"color": colour, "dash": "dash" if model == holder else "solid"},
                                     hovertemplate=f"model {model}<br>layer %{{x}}<br>mean CKA %{{y:.3f}}"
                                                   "<extra></extra>"))
        _layer_axes(fig, layer_map)
        fig.update_layout(title=f"On the tasks held out of {holder} ({', '.join(tasks)}): every model "
                                f"({kernel} kernel)", yaxis_title="mean CKA", height=420)
        figures.append(fig)
    return figures


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
    columns = ["task", "seed", "steps", "stop_reason", "n_validation", "base_loss", "control_loss", "loss_gain",
               "loss_gain_ci_low", "loss_gain_ci_high", "base_rouge_l", "control_rouge_l", "base_exact_match",
               "control_exact_match", "learned"]
    columns = [c for c in columns if c in controls]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for _, row in controls.iterrows():
        cells = "".join(
            f"<td class='{'flag' if c == 'learned' and not bool(row[c]) else ''}'>{_fmt(row[c])}</td>" for c in columns)
        body.append(f"<tr>{cells}</tr>")
    failed = controls.loc[~controls["learned"].astype(bool), "item"].tolist()
    note = (f"<p class='flag'>Not learned (loss gain at most the margin): {html.escape(', '.join(map(str, failed)))}."
            " Their rows compare with a model that is not a specialist.</p>" if failed else
            "<p>Every control beats the base model on its task's validation examples by more than the margin.</p>")
    return note + f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _band_table(table: pd.DataFrame, layer_map: LayerMap) -> pd.DataFrame:
    kernel = layer_map.params["kernel"]
    rows = table[table["kernel"] == kernel].assign(band=lambda d: d["layer"].map(layer_map.band_of))
    rows = rows[rows["band"].notna()]
    if rows.empty:
        return pd.DataFrame()
    out = rows.pivot_table(index="experimental_model", columns="band", values="cka", aggfunc="mean").round(3)
    return out.reindex(columns=[b for b in BANDS if b in out.columns])


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


def render_html(table: pd.DataFrame, layer_map: LayerMap, *, title: str, config_text: str,
                findings: Sequence[Finding] = (), controls: pd.DataFrame | None = None,
                comparison: pd.DataFrame | None = None, differences: pd.DataFrame | None = None) -> str:
    """The report as one HTML string; the first figure carries plotly.js inline, the others reuse it."""
    kernels = list(dict.fromkeys(table["kernel"]))
    figures: list[go.Figure] = [layer_map_plot(layer_map)]
    for kernel in kernels:
        figures.append(ceiling_figure(table, layer_map, kernel, comparison))
        diff = difference_figure(differences, layer_map, kernel) if differences is not None else None
        figures += [diff] if diff is not None else []
        figures += [task_curves_figure(table, layer_map, kernel), heatmap_figure(table, layer_map, kernel),
                    distribution_figure(table, layer_map, kernel), cluster_figure(table, layer_map, kernel)]
        figures += heldout_figures(table, layer_map, kernel)
    blocks = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    params = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in layer_map.params.items())
    summary = (f"<p>{table['experimental_model'].nunique()} experimental models, {table['task'].nunique()} tasks in "
               f"{table['cluster'].nunique()} clusters, {table['layer'].nunique()} layers (0 = embeddings), kernels: "
               f"{html.escape(', '.join(kernels))}.</p>")
    band_table = _band_table(table, layer_map)
    rule = RULE_TEXT.get(layer_map.params.get("rule", "threshold"), "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>{summary}
<h2>Findings</h2>
<p>Each claim of the paper as a hypothesis tested on this run; verdicts are <em>supported</em>, <em>contradicted</em>
or <em>inconclusive at this n</em>.</p>
{findings_table(findings)}
<h2>Controls: are they specialists?</h2>
<p>Validation loss (nats per target token) and task metrics of every control and of the base model on the control's
task's validation examples.</p>
{controls_section(controls)}
<h2>Layer map</h2>
{rule}
{bands_section(layer_map)}
<h3>Mean CKA per band</h3>{band_table.to_html() if not band_table.empty else '<p>No band claimed.</p>'}
{blocks[0]}
<h3>Parameters</h3><table>{params}</table>
<h2>Models against the noise ceiling, differences, per-task curves, heatmaps, distributions, clusters, held-out
tasks</h2>
{''.join(blocks[1:])}
<h2>Study config</h2><pre>{html.escape(config_text)}</pre>
</body></html>
"""


def write_html(table: pd.DataFrame, layer_map: LayerMap, path: Path, *, title: str, config_text: str,
               **sections) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(table, layer_map, title=title, config_text=config_text, **sections))
    return path
