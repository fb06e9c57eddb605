"""Report: static figures (PNG/PDF) and one self-contained interactive ``report.html`` from analysis results.

The figure data is computed once (:mod:`taskscope.report.figure_data`) and drawn by both
:mod:`taskscope.report.figures` (matplotlib) and :mod:`taskscope.report.html` (plotly, inlined, offline).
The pages are Jinja2 templates shipped in the package (``report/templates``: ``base.html`` layout and style
sheet, ``macros.html`` for the findings table, a figure and a data table, one template per report), rendered
with autoescape on by :mod:`taskscope.report.templating`.
A run folder's report is rebuilt with :func:`taskscope.pipeline.run.rebuild_report` (``taskscope report RUN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from taskscope.analysis.findings import Finding
from taskscope.analysis.layer_map import LayerMap
from taskscope.report.figures import write_figures
from taskscope.report.html import render_html, write_html


def write_report(table: pd.DataFrame, layer_map: LayerMap, out_dir: Path, *, title: str = "taskscope MOSSA study",
                 config_text: str = "", figure_formats: Sequence[str] = ("png", "pdf"),
                 findings: Sequence[Finding] = (), controls: pd.DataFrame | None = None,
                 comparison: pd.DataFrame | None = None, differences: pd.DataFrame | None = None,
                 cluster_summary: pd.DataFrame | None = None, training_logs: pd.DataFrame | None = None,
                 manifest: pd.DataFrame | None = None, baseline: str | None = None) -> Path:
    """Write ``out_dir/figures/*`` and ``out_dir/report.html``; returns the report's path.

    ``table`` is ``mossa.csv``; optional: ``findings`` (``findings.json``, top of the report), ``controls``
    (``controls.csv``), ``comparison`` (``ceiling_comparison.csv``: the noise ceiling), ``differences``
    (``differences.csv``), ``cluster_summary`` (``cluster_summary.csv``), ``training_logs`` (role, model, kind,
    step, loss rows), ``manifest`` (section, name, value rows) and ``baseline`` (default: the layer map's).
    """
    out_dir = Path(out_dir)
    baseline = baseline or layer_map.params.get("baseline_model")
    write_figures(table, layer_map, out_dir / "figures", figure_formats, differences=differences,
                  comparison=comparison, training_logs=training_logs, baseline=baseline)
    return write_html(table, layer_map, out_dir / "report.html", title=title, config_text=config_text,
                      findings=findings, controls=controls, comparison=comparison, differences=differences,
                      cluster_summary=cluster_summary, training_logs=training_logs, manifest=manifest,
                      baseline=baseline)


__all__ = ["render_html", "write_figures", "write_html", "write_report"]
