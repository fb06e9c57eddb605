"""Report: static figures (PNG/PDF) and one self-contained interactive ``report.html`` from analysis results."""

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
                 comparison: pd.DataFrame | None = None, differences: pd.DataFrame | None = None) -> Path:
    """Write ``out_dir/figures/*`` and ``out_dir/report.html``; returns the report's path.

    ``findings`` (top of the report), ``controls`` (``controls.csv``), ``comparison``
    (``ceiling_comparison.csv``: the noise ceiling) and ``differences`` (``differences.csv``) are optional.
    """
    out_dir = Path(out_dir)
    write_figures(table, layer_map, out_dir / "figures", figure_formats, differences=differences)
    return write_html(table, layer_map, out_dir / "report.html", title=title, config_text=config_text,
                      findings=findings, controls=controls, comparison=comparison, differences=differences)


__all__ = ["render_html", "write_figures", "write_html", "write_report"]
