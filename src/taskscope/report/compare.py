"""Compare two MOSSA runs on the same tasks: side-by-side layer curves per model and their differences.

Order of operations in :func:`compare_runs`:

1. check the runs are comparable: the same task set (else :class:`ValueError` naming the tasks only one run
   has), at least one kernel and one experimental model in common;
2. :func:`compare_table`: per model, kernel, task and layer, CKA in run A, in run B and B - A (paired by
   task); per model, kernel and layer, the mean across tasks of each with the task interval of the difference
   (``report.figures.task_mean_interval``, the report's own);
3. write ``compare.csv`` (per layer), ``compare_tasks.csv`` (per task and layer) and ``compare.html`` (one
   plotly figure per model and kernel: A, B, B - A side by side, the report's axes and interval bands;
   ``templates/compare.html`` on the report's layout) into the output folder.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from taskscope.analysis.layer_map import LayerMap
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import task_mean_interval
from taskscope.report.plotly_parts import curve_with_band, layer_axes, palette
from taskscope.report.templating import Table, render

KEYS = ["experimental_model", "kernel", "task", "layer"]


def check_comparable(table_a: pd.DataFrame, table_b: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> None:
    """Raise ``ValueError`` (one line) unless both tables hold the same tasks and share a kernel and a model."""
    tasks_a, tasks_b = set(table_a["task"]), set(table_b["task"])
    if tasks_a != tasks_b:
        raise ValueError(f"runs {name_a} and {name_b} have different tasks: only in {name_a}: "
                         f"{sorted(tasks_a - tasks_b)}; only in {name_b}: {sorted(tasks_b - tasks_a)}")
    for column in ("kernel", "experimental_model"):
        if not set(table_a[column]) & set(table_b[column]):
            raise ValueError(f"runs {name_a} and {name_b} share no {column}: {sorted(set(table_a[column]))} vs "
                             f"{sorted(set(table_b[column]))}")


def compare_tasks(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    """Per model, kernel, task and layer both runs have: ``cka_a``, ``cka_b`` and ``cka_diff`` = B - A."""
    a = table_a[[*KEYS, "cluster", "cka"]].rename(columns={"cka": "cka_a"})
    b = table_b[[*KEYS, "cka"]].rename(columns={"cka": "cka_b"})
    out = a.merge(b, on=KEYS, how="inner")
    out["cka_diff"] = out["cka_b"] - out["cka_a"]
    return out.sort_values(KEYS, kind="stable").reset_index(drop=True)


def compare_table(per_task: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per model, kernel and layer: mean ``cka_a``, ``cka_b``, ``cka_diff`` across tasks, the difference's task
    interval (``diff_ci_low`` / ``diff_ci_high``) and ``n_tasks``."""
    rows = []
    for (model, kernel), sub in per_task.groupby(["experimental_model", "kernel"], sort=False):
        layers = np.sort(sub["layer"].unique())
        mean, low, high = task_mean_interval(sub.rename(columns={"cka_diff": "cka"}), layers, confidence)
        means = sub.groupby("layer")[["cka_a", "cka_b"]].mean().reindex(layers)
        counts = sub.dropna(subset=["cka_diff"]).groupby("layer")["task"].nunique().reindex(layers).fillna(0)
        rows.append(pd.DataFrame({"experimental_model": model, "kernel": kernel, "layer": layers,
                                  "cka_a": means["cka_a"].to_numpy(), "cka_b": means["cka_b"].to_numpy(),
                                  "cka_diff": mean, "diff_ci_low": low, "diff_ci_high": high,
                                  "n_tasks": counts.astype(int).to_numpy()}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def comparison_figure(per_task: pd.DataFrame, model: str, kernel: str, maps: tuple[LayerMap, LayerMap],
                      names: tuple[str, str]) -> go.Figure:
    """One model and kernel: run A's and run B's mean curves (task intervals), then B - A with its interval and
    each task's difference thin.  Run names are escaped: plotly reads its text as HTML."""
    rows = per_task[(per_task["experimental_model"] == model) & (per_task["kernel"] == kernel)]
    layers = np.sort(rows["layer"].unique())
    shown = [html.escape(name) for name in names]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"A: {shown[0]}", f"B: {shown[1]}", "B - A"])
    for col, (column, layer_map) in enumerate((("cka_a", maps[0]), ("cka_b", maps[1])), start=1):
        mean, low, high = task_mean_interval(rows.rename(columns={column: "cka"}), layers)
        for trace in curve_with_band(layers, mean, low, high, palette(col - 1), shown[col - 1],
                                     hovertemplate=f"{shown[col - 1]}<br>model {model}<br>layer "
                                                   "%{x}<br>mean CKA %{y:.3f}<extra></extra>"):
            fig.add_trace(trace, row=1, col=col)
        layer_axes(fig, layer_map, row=1, col=col)
    for task, part in rows.groupby("task"):
        part = part.set_index("layer").reindex(layers)
        fig.add_trace(go.Scatter(x=layers, y=part["cka_diff"], mode="lines", line={"color": "#555", "width": 0.7},
                                 opacity=0.35, showlegend=False,
                                 hovertemplate=f"task {task}<br>layer %{{x}}<br>B - A %{{y:.3f}}<extra></extra>"),
                      row=1, col=3)
    mean, low, high = task_mean_interval(rows.rename(columns={"cka_diff": "cka"}), layers)
    for trace in curve_with_band(layers, mean, low, high, palette(2), "B - A (mean across tasks)", group="diff",
                                 line={"width": 2.5},
                                 hovertemplate="B - A<br>layer %{x}<br>mean difference %{y:.3f}<extra></extra>"):
        fig.add_trace(trace, row=1, col=3)
    fig.add_hline(y=0, line_color="#888", line_width=1, row=1, col=3)
    layer_axes(fig, maps[0] if maps[0].num_layers == maps[1].num_layers else maps[1], row=1, col=3)
    fig.update_yaxes(title_text="CKA", row=1, col=1)
    fig.update_yaxes(title_text="CKA difference", row=1, col=3)
    fig.update_layout(title=f"{model}: CKA with the task's control ({kernel} kernel), run A vs run B", height=430)
    return fig


def render_compare_html(per_task: pd.DataFrame, summary: pd.DataFrame, maps: tuple[LayerMap, LayerMap],
                        names: tuple[str, str], notes: list[str]) -> str:
    """The comparison page (``templates/compare.html``): what was compared, one figure per model and kernel,
    the per-layer table."""
    figures = [comparison_figure(per_task, model, kernel, maps, names)
               for (model, kernel), _ in per_task.groupby(["experimental_model", "kernel"], sort=False)]
    return render("compare.html", title=f"taskscope: {names[0]} vs {names[1]}", names=names,
                  n_tasks=per_task["task"].nunique(), notes=notes, figures=figures,
                  summary=Table.of(summary, text=("experimental_model", "kernel"), digits=4))


def compare_runs(run_a, run_b, out_dir: str | Path) -> Path:
    """Compare two MOSSA run views (``taskscope.studies.mossa.run.MossaRun``) into ``out_dir`` (module docstring);
    returns the path of ``compare.html``."""
    names = (str(run_a.run_dir), str(run_b.run_dir))
    table_a, table_b = run_a.tables["mossa"], run_b.tables["mossa"]
    check_comparable(table_a, table_b, *names)
    per_task = compare_tasks(table_a, table_b)
    summary = compare_table(per_task)
    notes = []
    for column in ("experimental_model", "kernel"):
        for name, table in zip(names, (table_a, table_b)):
            other = table_b if table is table_a else table_a
            only = sorted(set(table[column]) - set(other[column]))
            if only:
                notes.append(f"{column} only in {name} (not compared): {', '.join(map(str, only))}")
    if table_a["layer"].nunique() != table_b["layer"].nunique():
        notes.append(f"the runs have different layer counts ({table_a['layer'].nunique()} vs "
                     f"{table_b['layer'].nunique()}); differences cover the layers both have")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare_tasks.csv", per_task.to_csv(index=False))
    atomic_write_text(out / "compare.csv", summary.to_csv(index=False))
    path = out / "compare.html"
    atomic_write_text(path, render_compare_html(per_task, summary, (run_a.layer_map, run_b.layer_map), names, notes))
    return path
