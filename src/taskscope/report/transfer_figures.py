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
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from taskscope.analysis.correlation import spearman

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
