"""Transfer-study tables: curves over shot counts, loss by task size, checkpoint trajectories.

Input frames come from `taskscope.evaluate` (one row per instance) or are already per task; columns:

* `task_means`: ``task``, the grouping columns and the metric columns -> one row per (group, task).
* `transfer_curves` (Mueller et al. Figure 1): ``model``, ``task``, ``shots``, ``seed``, metrics (``rouge_l``,
  ``loss``).  Order: mean over instances per (model, task, shots, seed); mean over tasks per
  (model, shots, seed); then over seeds ``mean``, ``std`` (ddof 1; 0 for one seed), ``min``, ``max``,
  ``n_seeds``.  Output, long: ``model``, ``shots``, ``metric``, ``mean``, ``std``, ``min``, ``max``,
  ``n_seeds``, ``n_tasks``.
* `loss_by_task_size` (Figure 3): ``group`` column (e.g. ``scheme``), ``task``, ``split`` (``train``/``test``/
  ...), ``loss``; task sizes from a mapping or a ``task_size`` column.  Order: mean loss per (group, split,
  task); bin tasks by size (``bins`` edges, or that many quantile bins of the distinct sizes; right-open,
  the last closed); per (group, split, bin): ``n_tasks``, ``mean_loss``, ``sem_loss``, ``bin_low``, ``bin_high``.
* `trajectory_changes` / `trajectory_correlation` (Figure 4): ``task``, ``step``, metrics, one row per
  (task, checkpoint step).  For a chosen ``step`` s: ``before = value(s) - value(first step)``,
  ``after = value(last step) - value(s)``; correlations (`analysis.correlation.spearman`) between the two
  metrics' changes within each period, and between each metric's change before and after s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .correlation import spearman


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; have {list(frame.columns)}")


def task_means(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean of each metric over the rows of every (``by``..., ``task``) group."""
    keys = [*by, "task"]
    _require(frame, [*keys, *metrics], "task_means")
    return frame.groupby(keys, sort=True)[list(metrics)].mean().reset_index()


def transfer_curves(frame: pd.DataFrame, metrics: Sequence[str] = ("rouge_l", "loss"),
                    model_column: str = "model") -> pd.DataFrame:
    """Mean and spread over seeds of the task-averaged metrics per model and shot count (module docstring)."""
    metrics = [m for m in metrics if m in frame.columns] or list(metrics)
    per_task = task_means(frame, [model_column, "shots", "seed"], metrics)
    per_seed = per_task.groupby([model_column, "shots", "seed"], sort=True).agg(
        n_tasks=("task", "nunique"), **{m: (m, "mean") for m in metrics}).reset_index()
    rows = []
    for (model, shots), group in per_seed.groupby([model_column, "shots"], sort=True):
        for metric in metrics:
            values = group[metric].to_numpy(dtype=np.float64)
            rows.append({model_column: model, "shots": shots, "metric": metric, "mean": values.mean(),
                         "std": values.std(ddof=1) if values.size > 1 else 0.0, "min": values.min(),
                         "max": values.max(), "n_seeds": int(values.size), "n_tasks": int(group["n_tasks"].max())})
    return pd.DataFrame(rows)


def size_bins(sizes: Sequence[int], bins: int | Sequence[float]) -> np.ndarray:
    """Bin edges: ``bins`` itself when a sequence, else quantiles of the distinct sizes (duplicates merged)."""
    if isinstance(bins, int):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        distinct = np.unique(np.asarray(sizes, dtype=np.float64))
        edges = np.unique(np.quantile(distinct, np.linspace(0.0, 1.0, bins + 1)))
        return edges if edges.size > 1 else np.array([edges[0], edges[0] + 1.0])
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin edges must increase strictly, got {list(bins)}")
    return edges


def loss_by_task_size(frame: pd.DataFrame, sizes: Mapping[str, int] | None = None, *, bins: int | Sequence[float] = 4,
                      group: str = "scheme") -> pd.DataFrame:
    """Mean loss per task-size bin, per ``group`` and ``split`` (module docstring)."""
    _require(frame, [group, "task", "split", "loss"], "loss_by_task_size")
    per_task = frame.groupby([group, "split", "task"], sort=True)["loss"].mean().reset_index()
    if sizes is not None:
        unknown = sorted(set(per_task["task"]) - set(sizes))
        if unknown:
            raise ValueError(f"loss_by_task_size: no size given for task(s) {unknown}")
        per_task["task_size"] = per_task["task"].map(sizes)
    elif "task_size" in frame.columns:
        per_task["task_size"] = per_task["task"].map(frame.groupby("task")["task_size"].first())
    else:
        raise ValueError("loss_by_task_size: pass sizes= or give the frame a task_size column")
    edges = size_bins(per_task["task_size"].tolist(), bins)
    index = np.clip(np.searchsorted(edges, per_task["task_size"].to_numpy(dtype=np.float64), side="right") - 1,
                    0, edges.size - 2)
    outside = (per_task["task_size"] < edges[0]) | (per_task["task_size"] > edges[-1])
    per_task = per_task[~outside.to_numpy()].assign(bin=index[~outside.to_numpy()])
    rows = []
    for (name, split, b), part in per_task.groupby([group, "split", "bin"], sort=True):
        losses = part["loss"].to_numpy(dtype=np.float64)
        rows.append({group: name, "split": split, "bin": int(b), "bin_low": edges[b], "bin_high": edges[b + 1],
                     "n_tasks": int(losses.size), "mean_loss": losses.mean(),
                     "sem_loss": losses.std(ddof=1) / np.sqrt(losses.size) if losses.size > 1 else 0.0})
    return pd.DataFrame(rows)


def trajectory_changes(frame: pd.DataFrame, step: int, metrics: Sequence[str]) -> pd.DataFrame:
    """Per task, ``{metric}_before`` and ``{metric}_after`` around checkpoint ``step`` (module docstring)."""
    _require(frame, ["task", "step", *metrics], "trajectory_changes")
    steps = sorted(set(frame["step"]))
    if step not in steps or step in (steps[0], steps[-1]):
        raise ValueError(f"trajectory step {step} must be an interior checkpoint step; have {steps}")
    wide = frame.pivot_table(index="task", columns="step", values=list(metrics), aggfunc="mean")
    first, last = steps[0], steps[-1]
    out = {}
    for metric in metrics:
        out[f"{metric}_before"] = wide[(metric, step)] - wide[(metric, first)]
        out[f"{metric}_after"] = wide[(metric, last)] - wide[(metric, step)]
    return pd.DataFrame(out).dropna().reset_index()


def trajectory_correlation(frame: pd.DataFrame, step: int, x: str = "fewshot_loss",
                           y: str = "icl_loss") -> pd.DataFrame:
    """Rows ``comparison``, ``rho``, ``p_value``, ``n_tasks`` for the changes around ``step``."""
    changes = trajectory_changes(frame, step, [x, y])
    pairs = {
        f"{x} vs {y} (before)": (f"{x}_before", f"{y}_before"),
        f"{x} vs {y} (after)": (f"{x}_after", f"{y}_after"),
        f"{x} before vs after": (f"{x}_before", f"{x}_after"),
        f"{y} before vs after": (f"{y}_before", f"{y}_after"),
    }
    rows = []
    for name, (a, b) in pairs.items():
        result = spearman(changes[a], changes[b])
        rows.append({"comparison": name, "step": step, "rho": result.rho, "p_value": result.p_value,
                     "n_tasks": result.n})
    return pd.DataFrame(rows)
