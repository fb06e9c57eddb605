"""Figures of the transfer study (matplotlib, Agg), mirroring Mueller, Dredze and Andrews, Figures 1-4.

Each function takes a table from `taskscope.analysis.transfer` / `.correlation` and returns a Figure:

* `transfer_curve_figure(curves, metric)` (Figure 1): per model, the mean over seeds against the shot count
  with a shaded band of +- one standard deviation over seeds (``transfer_curves`` output);
* `correlation_scatter_figure(per_task, x, y, by)` (Figure 2): one point per task, one panel per value of
  ``by`` (e.g. model), Spearman rho and p in each panel's title;
* `task_size_figure(bins)` (Figure 3): mean loss per task-size bin, one line per group (sampling scheme),
  one panel per split, error bars of one standard error (``loss_by_task_size`` output);
* `trajectory_figure(frame, metric, step)` (Figure 4): per-task metric against checkpoint step (thin lines),
  the mean over tasks (thick) and the chosen step marked.

`taskscope.report.figures.save_figure` writes them (PNG and PDF, atomically).

The interactive twins for ``report.html`` (plotly, `*_plot`) draw the same data: integer ticks on every shot and
step axis, scatter points labelled by task with hover text naming model, task, cluster and both values, and the
per-task lines of the trajectories named by task.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from taskscope.analysis.correlation import spearman
from taskscope.report.html import _palette, _rgba

METRIC_LABELS = {"rouge_l": "ROUGE-L", "loss": "loss", "exact_match": "exact match",
                 "fewshot_loss": "few-shot fine-tuning loss", "icl_loss": "in-context loss"}


def _label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; have {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{what}: the table is empty")


def transfer_curve_figure(curves: pd.DataFrame, metric: str = "rouge_l", model_column: str = "model") -> Figure:
    """Mean +- std over seeds against the number of shots, one line per model."""
    _require(curves, [model_column, "shots", "metric", "mean", "std"], "transfer_curve_figure")
    rows = curves[curves["metric"] == metric]
    if rows.empty:
        raise ValueError(f"transfer_curve_figure: no rows for metric {metric!r}; have {sorted(set(curves['metric']))}")
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for model, part in rows.groupby(model_column, sort=True):
        part = part.sort_values("shots")
        line, = ax.plot(part["shots"], part["mean"], marker="o", label=str(model))
        ax.fill_between(part["shots"], part["mean"] - part["std"], part["mean"] + part["std"],
                        color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("number of fine-tuning examples")
    ax.set_ylabel(_label(metric))
    ax.set_title(f"Few-shot transfer ({_label(metric)}, mean ± std over seeds)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def correlation_scatter_figure(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
                               by: str | None = "model") -> Figure:
    """One point per task; a panel per value of ``by`` with Spearman rho and p in its title."""
    _require(per_task, [x, y, *([by] if by else [])], "correlation_scatter_figure")
    groups = list(per_task.groupby(by, sort=True)) if by else [("all tasks", per_task)]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.0 * len(groups), 3.6), squeeze=False)
    for ax, (name, part) in zip(axes[0], groups):
        result = spearman(part[x], part[y])
        ax.scatter(part[x], part[y], s=18, alpha=0.8)
        ax.set_title(f"{name}: Spearman ρ = {result.rho:.2f} (p = {result.p_value:.2g}, n = {result.n})", fontsize=9)
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(y))
    fig.tight_layout()
    return fig


def task_size_figure(bins: pd.DataFrame, group: str = "scheme") -> Figure:
    """Mean loss per task-size bin (± standard error), a line per ``group``, a panel per split."""
    _require(bins, [group, "split", "bin", "bin_low", "bin_high", "mean_loss", "sem_loss"], "task_size_figure")
    splits = sorted(set(bins["split"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        part = bins[bins["split"] == split]
        labels = (part.drop_duplicates("bin").sort_values("bin")
                  .apply(lambda r: f"{r.bin_low:g}–{r.bin_high:g}", axis=1).tolist())
        for name, rows in part.groupby(group, sort=True):
            rows = rows.sort_values("bin")
            ax.errorbar(rows["bin"], rows["mean_loss"], yerr=rows["sem_loss"], marker="o", capsize=3, label=str(name))
        ax.set_xticks(sorted(set(part["bin"])), labels)
        ax.set_xlabel("task size (instances)")
        ax.set_ylabel("mean loss")
        ax.set_title(f"{split} loss by task size")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def trajectory_figure(frame: pd.DataFrame, metric: str = "icl_loss", step: int | None = None) -> Figure:
    """Per-task ``metric`` against checkpoint step, the mean over tasks, and ``step`` marked."""
    _require(frame, ["task", "step", metric], "trajectory_figure")
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for _, part in frame.groupby("task", sort=True):
        part = part.sort_values("step")
        ax.plot(part["step"], part[metric], color="0.6", lw=0.8, alpha=0.6)
    mean = frame.groupby("step", sort=True)[metric].mean()
    ax.plot(mean.index, mean.to_numpy(), color="C3", lw=2.5, label="mean over tasks")
    if step is not None:
        ax.axvline(step, color="k", ls="--", lw=1, label=f"step {step}")
    ax.set_xlabel("training step")
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)} over checkpoints")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- interactive (plotly) twins for report.html
def _integer_axis(values) -> dict:
    """Axis settings with one tick per distinct integer value (shots, steps): no fractional ticks."""
    ticks = sorted({int(v) for v in values})
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [str(t) for t in ticks]}


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, template="plotly_white", margin={"t": 60, "l": 60, "r": 20, "b": 50},
                      hoverlabel={"align": "left"})
    return fig


def transfer_curve_plot(curves: pd.DataFrame, metric: str = "rouge_l", model_column: str = "model") -> go.Figure:
    """Interactive `transfer_curve_figure`: mean +- std over seeds per model, integer shot ticks."""
    _require(curves, [model_column, "shots", "metric", "mean", "std"], "transfer_curve_plot")
    rows = curves[curves["metric"] == metric]
    if rows.empty:
        raise ValueError(f"transfer_curve_plot: no rows for metric {metric!r}; have {sorted(set(curves['metric']))}")
    fig = go.Figure()
    for i, (model, part) in enumerate(rows.groupby(model_column, sort=True)):
        part, colour = part.sort_values("shots"), _palette(i)
        x = part["shots"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=(part["mean"] + part["std"]).tolist() + (part["mean"] - part["std"]).tolist()[::-1],
                                 fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0}, mode="lines", hoverinfo="skip",
                                 showlegend=False, legendgroup=str(model)))
        extra = [part[c].tolist() if c in part else [float("nan")] * len(part) for c in ("n_seeds", "n_tasks")]
        fig.add_trace(go.Scatter(
            x=x, y=part["mean"], mode="lines+markers", name=str(model), legendgroup=str(model), line={"color": colour},
            customdata=list(zip(part["std"], *extra)),
            hovertemplate=(f"model {model}<br>shots %{{x}}<br>{_label(metric)} %{{y:.4f}} ± %{{customdata[0]:.4f}}"
                           "<br>seeds %{customdata[1]}, tasks %{customdata[2]}<extra></extra>")))
    fig.update_xaxes(title="number of fine-tuning examples", **_integer_axis(rows["shots"]))
    fig.update_yaxes(title=_label(metric))
    return _layout(fig, f"Few-shot transfer ({_label(metric)}, mean ± std over seeds)")


def correlation_scatter_plot(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
                             by: str | None = "model", prefix: str = "") -> go.Figure:
    """Interactive `correlation_scatter_figure`: a point per task, labelled by task, a panel per ``by``;
    ``prefix`` goes before both axis names (e.g. ``"change in "``)."""
    _require(per_task, ["task", x, y, *([by] if by else [])], "correlation_scatter_plot")
    groups = list(per_task.groupby(by, sort=True)) if by else [("all tasks", per_task)]
    titles = []
    for name, part in groups:
        result = spearman(part[x], part[y])
        titles.append(f"{name}: ρ = {result.rho:.2f} (p = {result.p_value:.2g}, n = {result.n})")
    fig = make_subplots(rows=1, cols=len(groups), subplot_titles=titles, horizontal_spacing=0.08)
    for col, (name, part) in enumerate(groups, start=1):
        cluster = part["cluster"].fillna("").astype(str) if "cluster" in part else pd.Series([""] * len(part))
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers+text", text=part["task"], textposition="top center",
            textfont={"size": 9}, cliponaxis=False, marker={"size": 8, "color": _palette(col - 1)}, name=str(name),
            showlegend=False,
            customdata=list(zip(part["task"], cluster)),
            hovertemplate=(f"{by or ''} {name}<br>task %{{customdata[0]}} (%{{customdata[1]}})<br>{prefix}{_label(x)} "
                           f"%{{x:.4f}}<br>{prefix}{_label(y)} %{{y:.4f}}<extra></extra>")), row=1, col=col)
        fig.update_xaxes(title=prefix + _label(x), row=1, col=col)
        fig.update_yaxes(title=prefix + _label(y) if col == 1 else None, row=1, col=col)
    fig.update_annotations(font_size=11)
    return _layout(fig, f"{prefix}{_label(x)} vs {prefix}{_label(y)}, one point per unseen task")


def trajectory_plot(frame: pd.DataFrame, metric: str = "icl_loss", step: int | None = None) -> go.Figure:
    """Interactive `trajectory_figure`: a line per task (named), the mean over tasks, ``step`` marked."""
    _require(frame, ["task", "step", metric], "trajectory_plot")
    fig = go.Figure()
    for task, part in frame.groupby("task", sort=True):
        part = part.sort_values("step")
        fig.add_trace(go.Scatter(x=part["step"], y=part[metric], mode="lines+markers", name=str(task),
                                 line={"color": "rgba(120,120,120,0.5)", "width": 1}, marker={"size": 4},
                                 hovertemplate=f"task {task}<br>step %{{x}}<br>{_label(metric)} %{{y:.4f}}<extra></extra>"))
    mean = frame.groupby("step", sort=True)[metric].mean()
    fig.add_trace(go.Scatter(x=mean.index, y=mean.to_numpy(), mode="lines+markers", name="mean over tasks",
                             line={"color": "#d62728", "width": 3},
                             hovertemplate=f"mean over tasks<br>step %{{x}}<br>{_label(metric)} %{{y:.4f}}<extra></extra>"))
    if step is not None:
        fig.add_vline(x=step, line_dash="dash", line_color="black", annotation_text=f"step {step}")
    fig.update_xaxes(title="training step", **_integer_axis(frame["step"]))
    fig.update_yaxes(title=_label(metric))
    return _layout(fig, f"{_label(metric)} over checkpoints")


def task_size_plot(bins: pd.DataFrame, group: str = "scheme") -> go.Figure:
    """Interactive `task_size_figure`: mean loss per task-size bin (± standard error), a panel per split."""
    _require(bins, [group, "split", "bin", "bin_low", "bin_high", "mean_loss", "sem_loss"], "task_size_plot")
    splits = sorted(set(bins["split"]))
    fig = make_subplots(rows=1, cols=len(splits), subplot_titles=[f"{s} loss by task size" for s in splits])
    for col, split in enumerate(splits, start=1):
        part = bins[bins["split"] == split]
        labels = part.drop_duplicates("bin").sort_values("bin")
        for i, (name, rows) in enumerate(part.groupby(group, sort=True)):
            rows = rows.sort_values("bin")
            fig.add_trace(go.Scatter(
                x=rows["bin"], y=rows["mean_loss"], error_y={"type": "data", "array": rows["sem_loss"]},
                mode="lines+markers", name=str(name), legendgroup=str(name), showlegend=col == 1,
                line={"color": _palette(i)},
                hovertemplate=f"{group} {name}<br>{split} loss %{{y:.4f}}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title="task size (instances)", tickmode="array", tickvals=labels["bin"].tolist(),
                         ticktext=[f"{r.bin_low:g}–{r.bin_high:g}" for r in labels.itertuples()], row=1, col=col)
    return _layout(fig, "Seen-task loss by task size")


def data_limit_plot(table: pd.DataFrame, measures: Sequence[str]) -> go.Figure:
    """Interactive data-limit sweep: every measure against the per-task data limit (log x axis)."""
    _require(table, ["measure", "cap", "value"], "data_limit_plot")
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=list(measures))
    for col, measure in enumerate(measures, start=1):
        part = table[table["measure"] == measure].sort_values("cap")
        fig.add_trace(go.Scatter(x=part["cap"], y=part["value"], mode="lines+markers", showlegend=False,
                                 hovertemplate=f"{measure}<br>limit %{{x}}<br>value %{{y:.4f}}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(type="log", title="per-task data limit", tickmode="array",
                         tickvals=sorted(set(part["cap"])), row=1, col=col)
    fig.update_annotations(font_size=10)
    return _layout(fig, "Per-task data limit")
