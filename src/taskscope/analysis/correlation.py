"""Spearman rank correlations across tasks (Mueller et al.): does transfer by fine-tuning predict ICL?

Every function takes one row per task (and group) and correlates two columns across tasks with
``scipy.stats.spearmanr`` (ties get average ranks).  The p-value is two-sided for rho = 0: exact for at
most ``EXACT_MAX_N`` (8) tasks, from all n! pairings of the ranks (the t approximation says p = 0 for a
perfect rank agreement of 3 tasks, whose exact p is 2 x 1/6 = 1/3), otherwise from the t distribution with
n - 2 degrees of freedom.  Rows where either value is missing are dropped first.

* `spearman(x, y)` -> `Correlation(rho, p_value, n)`;
* `loss_correlation(per_task, x, y, by)`: rho between ``x`` (e.g. ``fewshot_loss``) and ``y`` (e.g.
  ``icl_loss``) per group of ``by`` (e.g. ``model``, ``shots``);
* `change_correlation(per_task, x, y, before, after)`: rho between the per-task *changes*
  ``x[after] - x[before]`` and ``y[after] - y[before]``, the two models named in the ``model`` column.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

MIN_TASKS = 3
EXACT_MAX_N = 8  # 8! = 40320 pairings, a few milliseconds


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho, its two-sided p-value and the number of tasks it was computed from."""

    rho: float
    p_value: float
    n: int


def spearman(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman correlation of paired values after dropping pairs with a NaN; NaN results below 3 pairs."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"spearman needs paired values, got {xs.shape} and {ys.shape}")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    n = int(xs.size)
    if n < MIN_TASKS or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(math.nan, math.nan, n)
    result = stats.spearmanr(xs, ys)
    rho = float(result.statistic)
    p_value = exact_spearman_p(xs, ys, rho) if n <= EXACT_MAX_N else float(result.pvalue)
    return Correlation(rho, p_value, n)


def exact_spearman_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    """Two-sided exact p-value of Spearman's ``rho`` over all n! pairings of ``y``'s ranks with ``x``'s, with
    ``scipy.stats.permutation_test``'s convention: twice the smaller one-sided share, at most 1 (pairings
    within 1e-12 of ``rho`` count as equal to it)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    pairings = ry[np.array(list(itertools.permutations(range(len(ry)))))]  # (n!, n)
    rhos = pairings @ rx / (np.linalg.norm(rx) * np.linalg.norm(ry))
    tolerance = 1e-12 * max(1.0, abs(rho))
    greater, less = np.mean(rhos >= rho - tolerance), np.mean(rhos <= rho + tolerance)
    return float(min(1.0, 2 * min(greater, less)))


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; have {list(frame.columns)}")


def loss_correlation(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss",
                     by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per group of ``by``: the group keys, ``x``, ``y``, ``rho``, ``p_value``, ``n_tasks``.

    ``per_task`` has one row per task within each group (columns ``task``, ``x``, ``y`` and ``by``).
    """
    _require(per_task, ["task", x, y, *by], "loss_correlation")
    groups = per_task.groupby(list(by), sort=True) if by else [((), per_task)]
    rows = []
    for keys, group in groups:
        if group["task"].duplicated().any():
            raise ValueError(f"loss_correlation: several rows per task in group {keys}; aggregate per task first")
        result = spearman(group[x], group[y])
        keys = keys if isinstance(keys, tuple) else (keys,)
        rows.append({**dict(zip(by, keys)), "x": x, "y": y, "rho": result.rho, "p_value": result.p_value,
                     "n_tasks": result.n})
    return pd.DataFrame(rows)


def task_changes(per_task: pd.DataFrame, columns: Sequence[str], *, before: str, after: str,
                 model_column: str = "model") -> pd.DataFrame:
    """Per task, ``column[after] - column[before]`` for each column (tasks present for both models only)."""
    _require(per_task, ["task", model_column, *columns], "task_changes")
    known = set(per_task[model_column])
    for name in (before, after):
        if name not in known:
            raise ValueError(f"task_changes: no rows for model {name!r} in column {model_column!r}; have {sorted(known)}")
    wide = per_task.pivot(index="task", columns=model_column, values=list(columns))
    changes = pd.DataFrame({c: wide[(c, after)] - wide[(c, before)] for c in columns}).dropna()
    return changes.reset_index()


def change_correlation(per_task: pd.DataFrame, x: str = "fewshot_loss", y: str = "icl_loss", *, before: str,
                       after: str, model_column: str = "model") -> Correlation:
    """Spearman rho between the per-task changes of ``x`` and of ``y`` from model ``before`` to ``after``."""
    changes = task_changes(per_task, [x, y], before=before, after=after, model_column=model_column)
    return spearman(changes[x], changes[y])
