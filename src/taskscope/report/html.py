"""One self-contained ``report.html``: interactive plotly figures with plotly.js inlined (opens offline).

Sections, in order: summary (models, tasks, clusters), the layer map (bands, the rule's parameters,
mean CKA per band and model), per-layer CKA distributions, per-cluster curves, the comparison of
experimental models (held-out vs seen tasks), and the study config.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from taskscope.analysis.layer_map import BANDS, LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import BAND_COLOURS

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}h2{margin-top:2em}"""


def _add_bands(fig: go.Figure, layer_map: LayerMap, **where) -> None:
    for name in BANDS:
        start, stop = getattr(layer_map, name)
        if stop > start:
            fig.add_vrect(x0=start - 0.5, x1=stop - 0.5, fillcolor=BAND_COLOURS[name], opacity=0.12, line_width=0,
                          annotation_text=name, annotation_position="top left", **where)


def distribution_figure(table: pd.DataFrame, layer_map: LayerMap, kernel: str) -> go.Figure:
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, subplot_titles=models)
    for col, model in enumerate(models, 1):
        sub = rows[rows["experimental_model"] == model]
        fig.add_trace(go.Box(x=sub["layer"], y=sub["cka"], name=model, text=sub["task"], boxpoints="all",
                             jitter=0.3, marker_size=3, showlegend=False), row=1, col=col)
        _add_bands(fig, layer_map, row=1, col=col)
        fig.update_xaxes(title_text="layer", row=1, col=col)
    fig.update_yaxes(title_text="CKA", row=1, col=1)
    fig.update_layout(title=f"CKA with each task's control model, across tasks ({kernel} kernel)", height=420)
    return fig


def cluster_figure(table: pd.DataFrame, kernel: str) -> go.Figure:
    rows = table[table["kernel"] == kernel]
    models = list(dict.fromkeys(rows["experimental_model"]))
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, subplot_titles=models)
    clusters = sorted(rows["cluster"].unique())
    for col, model in enumerate(models, 1):
        means = rows[rows["experimental_model"] == model].groupby(["cluster", "layer"])["cka"].mean().reset_index()
        for i, cluster in enumerate(clusters):
            curve = means[means["cluster"] == cluster]
            fig.add_trace(go.Scatter(x=curve["layer"], y=curve["cka"], mode="lines+markers", name=cluster,
                                     legendgroup=cluster, showlegend=col == 1,
                                     line={"color": _palette(i)}), row=1, col=col)
    fig.update_layout(title=f"Mean CKA per task cluster ({kernel} kernel)", height=420)
    return fig


def comparison_figure(table: pd.DataFrame, kernel: str) -> go.Figure:
    rows = table[table["kernel"] == kernel]
    fig = go.Figure()
    for model, sub in rows.groupby("experimental_model", sort=False):
        parts = sub.groupby("heldout") if sub["heldout"].any() else [(None, sub)]
        for heldout, part in parts:
            curve = part.groupby("layer")["cka"].agg(["mean", "std"]).reset_index()
            label = model if heldout is None else f"{model} ({'held-out' if heldout else 'seen'} tasks)"
            fig.add_trace(go.Scatter(x=curve["layer"], y=curve["mean"], mode="lines+markers", name=label,
                                     error_y={"type": "data", "array": curve["std"].fillna(0), "visible": True},
                                     line={"dash": "dash" if heldout else "solid"}))
    fig.update_layout(title=f"Experimental models: mean CKA across tasks (+- std) ({kernel} kernel)",
                      xaxis_title="layer", yaxis_title="mean CKA", height=420)
    return fig


def layer_map_plot(layer_map: LayerMap) -> go.Figure:
    p = layer_map.params
    layers = list(range(layer_map.num_layers))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=layers, y=layer_map.mean_cka, mode="lines+markers", name=f"{p['reference_model']} mean",
                             error_y={"type": "data", "array": list(layer_map.spread), "visible": True}))
    fig.add_hline(y=p["shared_min_cka"], line_dash="dot", annotation_text="shared_min_cka")
    fig.add_hline(y=p["refinement_max_cka"], line_dash="dot", annotation_text="refinement_max_cka")
    _add_bands(fig, layer_map)
    fig.update_layout(title="Layer map", xaxis_title="layer", yaxis_title="CKA", height=380)
    return fig


def _palette(i: int) -> str:
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")
    return colours[i % len(colours)]


def _band_table(table: pd.DataFrame, layer_map: LayerMap) -> pd.DataFrame:
    kernel = layer_map.params["kernel"]
    rows = table[table["kernel"] == kernel].assign(band=lambda d: d["layer"].map(layer_map.band_of))
    return rows.pivot_table(index="experimental_model", columns="band", values="cka", aggfunc="mean").round(3)


def render_html(table: pd.DataFrame, layer_map: LayerMap, *, title: str, config_text: str) -> str:
    """The report as one HTML string; the first figure carries plotly.js inline, the others reuse it."""
    figures = [layer_map_plot(layer_map)]
    for kernel in dict.fromkeys(table["kernel"]):
        figures += [distribution_figure(table, layer_map, kernel), cluster_figure(table, kernel),
                    comparison_figure(table, kernel)]
    blocks = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    bands = "".join(f"<tr><th>{name}</th><td>{getattr(layer_map, name)[0]}</td><td>{getattr(layer_map, name)[1]}</td>"
                    f"<td>{getattr(layer_map, name)[1] - getattr(layer_map, name)[0]}</td></tr>" for name in BANDS)
    params = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in layer_map.params.items())
    summary = (f"<p>{table['experimental_model'].nunique()} experimental models, {table['task'].nunique()} tasks in "
               f"{table['cluster'].nunique()} clusters, {table['layer'].nunique()} layers (0 = embeddings), kernels: "
               f"{html.escape(', '.join(dict.fromkeys(table['kernel'])))}.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>{summary}
<h2>Layer map</h2>
<p>Rule: shared = the leading layers whose mean CKA across tasks is at least <code>shared_min_cka</code> and whose
spread is at most <code>max_spread</code>; refinement = the trailing layers whose mean CKA is below
<code>refinement_max_cka</code> or whose spread exceeds <code>max_spread</code>; transition = the layers in between
(possibly none).  Bands are half-open layer ranges [start, stop).</p>
<table><tr><th>band</th><th>start</th><th>stop</th><th>layers</th></tr>{bands}</table>
<h3>Parameters</h3><table>{params}</table>
<h3>Mean CKA per band</h3>{_band_table(table, layer_map).to_html()}
{blocks[0]}
<h2>Per-layer CKA across tasks, clusters, and model comparison</h2>
{''.join(blocks[1:])}
<h2>Study config</h2><pre>{html.escape(config_text)}</pre>
</body></html>
"""


def write_html(table: pd.DataFrame, layer_map: LayerMap, path: Path, *, title: str, config_text: str) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(table, layer_map, title=title, config_text=config_text))
    return path
