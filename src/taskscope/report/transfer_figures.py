"""Figures of the transfer study, mirroring Mueller, Dredze and Andrews, Figures 1-4: each drawn twice, by
matplotlib (Agg, for papers) and by plotly (for ``report.html``), from one prepared piece of figure data.

Each figure is a small class: ``of(table, ...)`` checks the table's columns and prepares the figure data once
(rows chosen, sorted and grouped, statistics computed), ``figure()`` draws it with matplotlib and ``plot()``
with plotly; the report calls ``of`` once and both drawers.  The functions below take a table from
`taskscope.analysis.transfer` / `.correlation` and return one drawing:

* `transfer_curve_figure(curves, metric)` (Figure 1): per model, the mean over seeds against the shot count
  with a shaded band of +- one standard deviation over seeds (``transfer_curves`` output);
* `correlation_scatter_figure(per_task, x, y, by)` (Figure 2): one point per task, one panel per value of
  ``by`` (e.g. model), Spearman rho and p in each panel's title;
* `task_size_figure(bins)` (Figure 3): mean loss per task-size bin, one line per group (sampling scheme),
  one panel per split, error bars of one standard error (``loss_by_task_size`` output);
* `trajectory_figure(frame, metric, step)` (Figure 4): per-task metric against checkpoint step (thin lines),
  the mean over tasks (thick) and the chosen step marked;
* `data_limit_figure(table, measures)`: every measure against the per-task data limit (log x axis).

`taskscope.report.figures.save_figure` writes them (PNG and PDF, atomically).

The interactive twins (plotly, `*_plot`) draw the same data: integer ticks on every shot and
step axis, scatter points labelled by task with hover text naming model, task, cluster and both values, and the
per-task lines of the trajectories named by task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from taskscope.analysis.correlation import Correlation, spearman
from taskscope.report.plotly_parts import curve_with_band, palette

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



def _integer_axis(values) -> dict:
    """Axis settings with one tick per distinct integer value (shots, steps): no fractional ticks."""
    ticks = sorted({int(v) for v in values})
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [str(t) for t in ticks]}


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, template="plotly_white", margin={"t": 60, "l": 60, "r": 20, "b": 50},
                      hoverlabel={"align": "left"})
    return fig


def _panels(n: int, width: float) -> tuple[Figure, list]:
    fig, axes = plt.subplots(1, n, figsize=(width * n, 3.6), squeeze=False)
    return fig, list(axes[0])


def _finish(fig: Figure, ax, xlabel: str, ylabel: str, title: str) -> Figure:
    """Axis labels, title and legend of a one-panel figure, then a tight layout."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- Figure 1: transfer curves
@dataclass(frozen=True)
class TransferCurves:
    """Per model (sorted), its rows of one metric sorted by shots: ``shots``, ``mean``, ``std`` (+ counts)."""

    metric: str
    lines: list[tuple[str, pd.DataFrame]]

    @classmethod
    def of(cls, curves: pd.DataFrame, metric: str = "rouge_l", model_column: str = "model") -> TransferCurves:
        _require(curves, [model_column, "shots", "metric", "mean", "std"], "transfer curves")
        rows = curves[curves["metric"] == metric]
        if rows.empty:
            raise ValueError(f"transfer curves: no rows for metric {metric!r}; have {sorted(set(curves['metric']))}")
        return cls(metric, [(str(model), part.sort_values("shots"))
                            for model, part in rows.groupby(model_column, sort=True)])

    @property
    def title(self) -> str:
        return f"Few-shot transfer ({_label(self.metric)}, mean ± std over seeds)"

    def figure(self) -> Figure:
        fig, (ax,) = _panels(1, 5.0)
        for model, part in self.lines:
            line, = ax.plot(part["shots"], part["mean"], marker="o", label=model)
            ax.fill_between(part["shots"], part["mean"] - part["std"], part["mean"] + part["std"],
                            color=line.get_color(), alpha=0.2, lw=0)
        return _finish(fig, ax, "number of fine-tuning examples", _label(self.metric), self.title)

    def plot(self) -> go.Figure:
        fig = go.Figure()
        for i, (model, part) in enumerate(self.lines):
            extra = [part[c].tolist() if c in part else [float("nan")] * len(part) for c in ("n_seeds", "n_tasks")]
            fig.add_traces(curve_with_band(
                part["shots"], part["mean"], part["mean"] - part["std"], part["mean"] + part["std"], palette(i), model,
                customdata=list(zip(part["std"], *extra)),
                hovertemplate=(f"model {model}<br>shots %{{x}}<br>{_label(self.metric)} %{{y:.4f}} ± "
                               "%{customdata[0]:.4f}<br>seeds %{customdata[1]}, tasks %{customdata[2]}<extra></extra>")))
        shots = pd.concat([part["shots"] for _, part in self.lines])
        fig.update_xaxes(title="number of fine-tuning examples", **_integer_axis(shots))
        fig.update_yaxes(title=_label(self.metric))
        return _layout(fig, self.title)


def transfer_curve_figure(curves: pd.DataFrame, metric: str = "rouge_l", model_column: str = "model") -> Figure:
    """Mean +- std over seeds against the number of shots, one line per model."""
    return TransferCurves.of(curves, metric, model_column).figure()


def transfer_curve_plot(curves: pd.DataFrame, metric: str = "rouge_l", model_column: str = "model") -> go.Figure:
    """Interactive `transfer_curve_figure`: mean +- std over seeds per model, integer shot ticks."""
    return TransferCurves.of(curves, metric, model_column).plot()


# ---------------------------------------------------------------- Figure 2: one point per task
@dataclass(frozen=True)
class ScatterPanel:
    name: str
    rows: pd.DataFrame
    correlation: Correlation


@dataclass(frozen=True)
class CorrelationScatter:
    """A panel per value of ``by`` (sorted; one panel "all tasks" without it): its rows and Spearman rho."""

    x: str
    y: str
    by: str | None
    panels: list[ScatterPanel]

    @classmethod
    def of(cls, per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
           by: str | None = "model") -> CorrelationScatter:
        _require(per_task, ["task", x, y, *([by] if by else [])], "correlation scatter")
        groups = list(per_task.groupby(by, sort=True)) if by else [("all tasks", per_task)]
        return cls(x, y, by, [ScatterPanel(str(name), part, spearman(part[x], part[y])) for name, part in groups])

    def figure(self) -> Figure:
        fig, axes = _panels(len(self.panels), 4.0)
        for ax, panel in zip(axes, self.panels):
            result = panel.correlation
            ax.scatter(panel.rows[self.x], panel.rows[self.y], s=18, alpha=0.8)
            ax.set_title(f"{panel.name}: Spearman ρ = {result.rho:.2f} (p = {result.p_value:.2g}, n = {result.n})",
                         fontsize=9)
            ax.set_xlabel(_label(self.x))
            ax.set_ylabel(_label(self.y))
        fig.tight_layout()
        return fig

    def plot(self, prefix: str = "") -> go.Figure:
        """``prefix`` goes before both axis names (e.g. ``"change in "``); points are labelled by task."""
        x, y = self.x, self.y
        titles = [f"{p.name}: ρ = {p.correlation.rho:.2f} (p = {p.correlation.p_value:.2g}, n = {p.correlation.n})"
                  for p in self.panels]
        fig = make_subplots(rows=1, cols=len(self.panels), subplot_titles=titles, horizontal_spacing=0.08)
        for col, panel in enumerate(self.panels, start=1):
            part = panel.rows
            cluster = part["cluster"].fillna("").astype(str) if "cluster" in part else pd.Series([""] * len(part))
            fig.add_trace(go.Scatter(
                x=part[x], y=part[y], mode="markers+text", text=part["task"], textposition="top center",
                textfont={"size": 9}, cliponaxis=False, marker={"size": 8, "color": palette(col - 1)},
                name=panel.name, showlegend=False, customdata=list(zip(part["task"], cluster)),
                hovertemplate=(f"{self.by or ''} {panel.name}<br>task %{{customdata[0]}} (%{{customdata[1]}})<br>"
                               f"{prefix}{_label(x)} %{{x:.4f}}<br>{prefix}{_label(y)} %{{y:.4f}}<extra></extra>")),
                row=1, col=col)
            fig.update_xaxes(title=prefix + _label(x), row=1, col=col)
            fig.update_yaxes(title=prefix + _label(y) if col == 1 else None, row=1, col=col)
        fig.update_annotations(font_size=11)
        return _layout(fig, f"{prefix}{_label(x)} vs {prefix}{_label(y)}, one point per unseen task")


def correlation_scatter_figure(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
                               by: str | None = "model") -> Figure:
    """One point per task; a panel per value of ``by`` with Spearman rho and p in its title."""
    return CorrelationScatter.of(per_task, x, y, by).figure()


def correlation_scatter_plot(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
                             by: str | None = "model", prefix: str = "") -> go.Figure:
    """Interactive `correlation_scatter_figure`: a point per task, labelled by task, a panel per ``by``;
    ``prefix`` goes before both axis names (e.g. ``"change in "``)."""
    return CorrelationScatter.of(per_task, x, y, by).plot(prefix)


# ---------------------------------------------------------------- Figure 3: loss by task size
@dataclass(frozen=True)
class SizePanel:
    split: str
    bins: list[int]
    labels: list[str]
    lines: list[tuple[str, pd.DataFrame]]


@dataclass(frozen=True)
class TaskSizeLoss:
    """A panel per split (sorted): its bins with ``low–high`` labels, and a line per ``group`` sorted by bin."""

    group: str
    panels: list[SizePanel]

    @classmethod
    def of(cls, bins: pd.DataFrame, group: str = "scheme") -> TaskSizeLoss:
        _require(bins, [group, "split", "bin", "bin_low", "bin_high", "mean_loss", "sem_loss"], "loss by task size")
        panels = []
        for split in sorted(set(bins["split"])):
            part = bins[bins["split"] == split]
            ticks = part.drop_duplicates("bin").sort_values("bin")
            panels.append(SizePanel(split, ticks["bin"].tolist(),
                                    [f"{r.bin_low:g}–{r.bin_high:g}" for r in ticks.itertuples()],
                                    [(str(name), rows.sort_values("bin"))
                                     for name, rows in part.groupby(group, sort=True)]))
        return cls(group, panels)

    def figure(self) -> Figure:
        fig, axes = _panels(len(self.panels), 4.5)
        for ax, panel in zip(axes, self.panels):
            for name, rows in panel.lines:
                ax.errorbar(rows["bin"], rows["mean_loss"], yerr=rows["sem_loss"], marker="o", capsize=3, label=name)
            ax.set_xticks(panel.bins, panel.labels)
            ax.set_xlabel("task size (instances)")
            ax.set_ylabel("mean loss")
            ax.set_title(f"{panel.split} loss by task size")
            ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        return fig

    def plot(self) -> go.Figure:
        fig = make_subplots(rows=1, cols=len(self.panels),
                            subplot_titles=[f"{p.split} loss by task size" for p in self.panels])
        for col, panel in enumerate(self.panels, start=1):
            for i, (name, rows) in enumerate(panel.lines):
                fig.add_trace(go.Scatter(
                    x=rows["bin"], y=rows["mean_loss"], error_y={"type": "data", "array": rows["sem_loss"]},
                    mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                    line={"color": palette(i)},
                    hovertemplate=f"{self.group} {name}<br>{panel.split} loss %{{y:.4f}}<extra></extra>"),
                    row=1, col=col)
            fig.update_xaxes(title="task size (instances)", tickmode="array", tickvals=panel.bins,
                             ticktext=panel.labels, row=1, col=col)
        return _layout(fig, "Seen-task loss by task size")


def task_size_figure(bins: pd.DataFrame, group: str = "scheme") -> Figure:
    """Mean loss per task-size bin (± standard error), a line per ``group``, a panel per split."""
    return TaskSizeLoss.of(bins, group).figure()


def task_size_plot(bins: pd.DataFrame, group: str = "scheme") -> go.Figure:
    """Interactive `task_size_figure`: mean loss per task-size bin (± standard error), a panel per split."""
    return TaskSizeLoss.of(bins, group).plot()


# ---------------------------------------------------------------- Figure 4: checkpoint trajectories
@dataclass(frozen=True)
class Trajectory:
    """Per task (sorted), its rows sorted by step; the mean over tasks per step; the chosen step."""

    metric: str
    step: int | None
    tasks: list[tuple[str, pd.DataFrame]]
    mean: pd.Series

    @classmethod
    def of(cls, frame: pd.DataFrame, metric: str = "icl_loss", step: int | None = None) -> Trajectory:
        _require(frame, ["task", "step", metric], "trajectory")
        return cls(metric, step, [(str(task), part.sort_values("step")) for task, part in frame.groupby("task", sort=True)],
                   frame.groupby("step", sort=True)[metric].mean())

    @property
    def title(self) -> str:
        return f"{_label(self.metric)} over checkpoints"

    def figure(self) -> Figure:
        fig, (ax,) = _panels(1, 5.0)
        for _, part in self.tasks:
            ax.plot(part["step"], part[self.metric], color="0.6", lw=0.8, alpha=0.6)
        ax.plot(self.mean.index, self.mean.to_numpy(), color="C3", lw=2.5, label="mean over tasks")
        if self.step is not None:
            ax.axvline(self.step, color="k", ls="--", lw=1, label=f"step {self.step}")
        return _finish(fig, ax, "training step", _label(self.metric), self.title)

    def plot(self) -> go.Figure:
        label = _label(self.metric)
        fig = go.Figure()
        for task, part in self.tasks:
            fig.add_trace(go.Scatter(x=part["step"], y=part[self.metric], mode="lines+markers", name=task,
                                     line={"color": "rgba(120,120,120,0.5)", "width": 1}, marker={"size": 4},
                                     hovertemplate=f"task {task}<br>step %{{x}}<br>{label} %{{y:.4f}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=self.mean.index, y=self.mean.to_numpy(), mode="lines+markers",
                                 name="mean over tasks", line={"color": "#d62728", "width": 3},
                                 hovertemplate=f"mean over tasks<br>step %{{x}}<br>{label} %{{y:.4f}}<extra></extra>"))
        if self.step is not None:
            fig.add_vline(x=self.step, line_dash="dash", line_color="black", annotation_text=f"step {self.step}")
        fig.update_xaxes(title="training step", **_integer_axis(self.mean.index))
        fig.update_yaxes(title=label)
        return _layout(fig, self.title)


def trajectory_figure(frame: pd.DataFrame, metric: str = "icl_loss", step: int | None = None) -> Figure:
    """Per-task ``metric`` against checkpoint step, the mean over tasks, and ``step`` marked."""
    return Trajectory.of(frame, metric, step).figure()


def trajectory_plot(frame: pd.DataFrame, metric: str = "icl_loss", step: int | None = None) -> go.Figure:
    """Interactive `trajectory_figure`: a line per task (named), the mean over tasks, ``step`` marked."""
    return Trajectory.of(frame, metric, step).plot()


# ---------------------------------------------------------------- the per-task data limit
@dataclass(frozen=True)
class DataLimit:
    """A panel per measure: its rows sorted by the per-task data limit ``cap``."""

    panels: list[tuple[str, pd.DataFrame]]

    @classmethod
    def of(cls, table: pd.DataFrame, measures: Sequence[str]) -> DataLimit:
        _require(table, ["measure", "cap", "value"], "data limit")
        return cls([(m, table[table["measure"] == m].sort_values("cap")) for m in measures])

    def figure(self) -> Figure:
        fig, axes = plt.subplots(1, len(self.panels), figsize=(4.0 * len(self.panels), 3.4), squeeze=False)
        for ax, (measure, part) in zip(axes[0], self.panels):
            ax.plot(part["cap"], part["value"], marker="o")
            ax.set_xscale("log")
            ax.set_xlabel("per-task data limit")
            ax.set_title(measure, fontsize=9)
        fig.tight_layout()
        return fig

    def plot(self) -> go.Figure:
        fig = make_subplots(rows=1, cols=len(self.panels), subplot_titles=[m for m, _ in self.panels])
        for col, (measure, part) in enumerate(self.panels, start=1):
            fig.add_trace(go.Scatter(x=part["cap"], y=part["value"], mode="lines+markers", showlegend=False,
                                     hovertemplate=f"{measure}<br>limit %{{x}}<br>value %{{y:.4f}}<extra></extra>"),
                          row=1, col=col)
            fig.update_xaxes(type="log", title="per-task data limit", tickmode="array",
                             tickvals=sorted(set(part["cap"])), row=1, col=col)
        fig.update_annotations(font_size=10)
        return _layout(fig, "Per-task data limit")


def data_limit_figure(table: pd.DataFrame, measures: Sequence[str]) -> Figure:
    """One panel per measure: its value against the per-task data limit (log x axis)."""
    return DataLimit.of(table, measures).figure()


def data_limit_plot(table: pd.DataFrame, measures: Sequence[str]) -> go.Figure:
    """Interactive data-limit sweep: every measure against the per-task data limit (log x axis)."""
    return DataLimit.of(table, measures).plot()
