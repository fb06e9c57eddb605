"""The plotly pieces every interactive figure shares (MOSSA report, transfer report, run comparison).

* `palette(i)`: the i-th line colour (plotly's default cycle);
* `rgba(hex, alpha)`: a ``#rrggbb`` colour with transparency, for interval fills;
* `band_trace(x, low, high, ...)`: a filled interval between two curves (gaps where NaN);
* `curve_with_band(x, mean, low, high, ...)`: a curve and its interval, one colour and one legend group;
* `layer_axes(fig, layer_map)`: integer ticks on a layer axis and the claimed bands shaded.
"""

from __future__ import annotations

import plotly.graph_objects as go

from taskscope.analysis.layer_map import LayerMap
from taskscope.report.figure_data import band_spans
from taskscope.report.figures import BAND_COLOURS

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def palette(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_trace(x, low, high, colour: str, name: str, group: str, show: bool = False) -> go.Scatter:
    """A filled interval between ``low`` and ``high`` (gaps where NaN)."""
    xs = list(x) + list(x)[::-1]
    ys = list(high) + list(low)[::-1]
    return go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=rgba(colour, 0.18), line={"width": 0},
                      hoverinfo="skip", name=name, legendgroup=group, showlegend=show)


def curve_with_band(x, mean, low, high, colour: str, name: str, *, group: str | None = None,
                    line: dict | None = None, **scatter) -> tuple[go.Scatter, go.Scatter]:
    """``(band, curve)``: the interval `band_trace` and a lines+markers curve of ``mean`` in ``colour``, both in
    legend group ``group`` (default ``name``); ``line`` adds line settings, ``scatter`` curve settings."""
    group = group or name
    return (band_trace(x, low, high, colour, f"{name} interval", group),
            go.Scatter(x=x, y=mean, mode="lines+markers", name=name, legendgroup=group,
                       line={"color": colour, **(line or {})}, **scatter))


def layer_axes(fig: go.Figure, layer_map: LayerMap, **where) -> None:
    """Integer ticks on the layer axis and the claimed bands shaded (``where``: ``row``/``col`` of a subplot)."""
    step = max(1, layer_map.num_layers // 16)
    fig.update_xaxes(title_text="layer", tick0=0, dtick=step, tickformat="d",
                     range=[-0.5, layer_map.num_layers - 0.5], **where)
    for name, x0, x1 in band_spans(layer_map):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=BAND_COLOURS[name], opacity=0.12, line_width=0,
                      annotation_text=name, annotation_position="top left", **where)
