"""The transfer study's claims T1-T6 as :class:`~taskscope.analysis.findings.Finding` s, and its sanity rule.

`transfer_findings(tables, design)` reads the analysis tables of a run (``per_task``, ``seen_loss``,
``icl``, ``trajectory``: the columns `studies.transfer` writes) and ``design`` (which models play which
part: `FindingsDesign`).  Every claim's statistic rests on the unseen (or, T4, seen) *tasks* as units; its
interval is a percentile bootstrap over tasks (``n_boot`` resamples, seeded), except T4, which compares
sampling schemes and uses Spearman's exact p.  Verdicts follow `findings.interval_verdict`: a claim is
``supported`` / ``contradicted`` only when its 95 % interval excludes 0, and ``inconclusive`` below
``min_tasks`` units, so a quickstart with 3 tasks can support nothing.  A claim whose models the config did
not run is ``inconclusive`` with the reason "not run".

===  =====================================================  ====================================================
id   claim (Mueller et al.)                                 statistic (direction claimed)
===  =====================================================  ====================================================
T1   instruction tuning harms few-shot transfer             mean over tasks of few-shot loss (IT - pre-trained),
                                                            averaged over shot counts > 0 (> 0)
T2   few-shot fine-tuning loss correlates with ICL loss     Spearman rho across tasks at the smallest shot count
                                                            > 0 (the paper's 5), instruction-tuned model (> 0)
T3   fewer samples per task improve both                    mean over tasks of ICL loss (largest limit - smallest);
                                                            the few-shot loss must agree (> 0 both)
T4   the proportional sampler's seen-task generalisation    Spearman rho across sampling schemes between mean
     tracks ICL                                             seen-test loss and mean unseen ICL loss (> 0)
T5   change-vs-change correlation grows later in training   rho(after step) - rho(before step) of few-shot vs
                                                            ICL loss changes across tasks (> 0)
T6   unsupervised mixing reduces forgetting                 mean over tasks of few-shot loss (without - with
                                                            mixing), shot counts > 0 (> 0)
===  =====================================================  ====================================================

Sanity rule (`sanity_checks`, docs/transfer.md): for every model the few-shot loss, averaged over unseen tasks
and seeds, is lower at the largest shot count than at 0 shots.  A run that fails it has a training problem
(too high a learning rate, too few steps to fit), and its findings should not be read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .correlation import spearman
from .findings import Finding, interval_verdict
from .transfer import trajectory_changes

MIN_TASKS = 8     # tasks a task-level claim needs before it can be decided
MIN_SCHEMES = 5   # sampling schemes T4 needs (the smallest exact two-sided Spearman p is 1 at 3, 1/12 at 4, 1/60 at 5)
CLAIMS = {
    "T1": "instruction tuning harms few-shot transfer to unseen tasks (vs the pre-trained model)",
    "T2": "few-shot fine-tuning loss correlates with in-context loss across unseen tasks",
    "T3": "fewer samples per task during instruction tuning improve both ICL and few-shot transfer",
    "T4": "the sampler whose seen-task test loss is lower also has the lower unseen ICL loss",
    "T5": "the change-vs-change correlation of few-shot and ICL loss is stronger late than early in training",
    "T6": "mixing unsupervised steps into instruction tuning reduces forgetting (lower few-shot loss)",
}


@dataclass(frozen=True)
class FindingsDesign:
    """Which models each claim compares (names from the study config; ``None`` / empty: not run)."""

    pair: tuple[str, str] | None = None                  # (pre-trained, instruction-tuned)
    data_limits: dict[str, int] = field(default_factory=dict)   # model -> per-task data limit
    sampling: tuple[str, ...] = ()
    unsupervised: tuple[str, str] | None = None          # (without, with mixing)
    trajectory_step: int | None = None
    n_boot: int = 2000
    seed: int = 0


def _not_run(fid: str, statistic: str, why: str) -> Finding:
    return Finding(fid, CLAIMS[fid], statistic, None, None, None, 0, "inconclusive", f"not run: {why}")


def _bootstrap(values: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, seed: int
               ) -> tuple[float, float] | None:
    """95 % percentile interval of ``stat`` over resamples of the rows of ``values`` (tasks)."""
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = np.array([stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)])
    draws = draws[np.isfinite(draws)]
    if draws.size < n_boot // 2:
        return None
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def _mean_finding(fid: str, statistic: str, diffs: pd.Series, design: FindingsDesign, extra: str = "") -> Finding:
    values = diffs.dropna().to_numpy(dtype=np.float64)
    n = len(values)
    value = float(values.mean()) if n else None
    interval = _bootstrap(values, np.mean, design.n_boot, design.seed) if n else None
    p_value = float(stats.wilcoxon(values).pvalue) if n >= 2 and np.any(values != 0) else None
    verdict, reason = interval_verdict(interval, 1, n, MIN_TASKS)
    return Finding(fid, CLAIMS[fid], statistic, value, interval, p_value, n, verdict, reason + extra)


def _rho(pairs: np.ndarray) -> float:
    return spearman(pairs[:, 0], pairs[:, 1]).rho


def _shots_over_zero(per_task: pd.DataFrame) -> pd.DataFrame:
    return per_task[per_task["shots"] > 0]


def _model_losses(per_task: pd.DataFrame, model: str, column: str) -> pd.Series:
    """Per task: ``column`` of ``model`` averaged over shot counts > 0."""
    part = _shots_over_zero(per_task)
    return part[part["model"] == model].groupby("task")[column].mean()


def finding_t1(per_task: pd.DataFrame, design: FindingsDesign) -> Finding:
    statistic = "mean over tasks of few-shot loss, instruction-tuned - pre-trained (shots > 0)"
    if design.pair is None:
        return _not_run("T1", statistic, "no (pre-trained, instruction-tuned) pair of models")
    before, after = design.pair
    diffs = _model_losses(per_task, after, "fewshot_loss") - _model_losses(per_task, before, "fewshot_loss")
    return _mean_finding("T1", statistic, diffs, design, f" ({after} vs {before})")


def finding_t2(per_task: pd.DataFrame, design: FindingsDesign) -> Finding:
    statistic = "Spearman rho across tasks, few-shot loss vs ICL loss"
    positive = sorted(set(_shots_over_zero(per_task)["shots"]))
    if design.pair is None or not positive:
        return _not_run("T2", statistic, "no instruction-tuned model or no shot count > 0")
    model, shots = design.pair[1], positive[0]
    part = per_task[(per_task["model"] == model) & (per_task["shots"] == shots)].dropna(
        subset=["fewshot_loss", "icl_loss"])
    pairs = part[["fewshot_loss", "icl_loss"]].to_numpy(dtype=np.float64)
    result = spearman(pairs[:, 0], pairs[:, 1]) if len(pairs) else None
    n = 0 if result is None else result.n
    interval = _bootstrap(pairs, _rho, design.n_boot, design.seed) if n >= 3 else None
    verdict, reason = interval_verdict(interval, 1, n, MIN_TASKS)
    return Finding("T2", CLAIMS["T2"], f"{statistic} ({model}, {shots} shots)",
                   None if result is None else result.rho, interval, None if result is None else result.p_value,
                   n, verdict, reason)


def finding_t3(per_task: pd.DataFrame, design: FindingsDesign) -> Finding:
    statistic = "mean over tasks of ICL loss, largest data limit - smallest"
    if len(design.data_limits) < 2:
        return _not_run("T3", statistic, "fewer than two data-limit models")
    ordered = sorted(design.data_limits, key=design.data_limits.get)
    small, large = ordered[0], ordered[-1]
    icl = per_task.drop_duplicates(["model", "task"]).set_index(["model", "task"])["icl_loss"]
    icl_diff = icl.loc[large] - icl.loc[small]
    fewshot_diff = _model_losses(per_task, large, "fewshot_loss") - _model_losses(per_task, small, "fewshot_loss")
    icl_finding = _mean_finding("T3", statistic, icl_diff, design)
    fewshot_finding = _mean_finding("T3", "few-shot", fewshot_diff, design)
    verdict, reason = icl_finding.verdict, icl_finding.reason
    if verdict != fewshot_finding.verdict:
        verdict = "inconclusive"
        reason = f"ICL: {icl_finding.reason}; few-shot: {fewshot_finding.reason} (the claim needs both)"
    fewshot_value = "n/a" if fewshot_finding.value is None else f"{fewshot_finding.value:.4g}"
    return Finding("T3", CLAIMS["T3"], f"{statistic} ({large} - {small})", icl_finding.value, icl_finding.interval,
                   icl_finding.p_value, icl_finding.n, verdict, f"{reason}; few-shot difference {fewshot_value}")


def finding_t4(seen_loss: pd.DataFrame, icl: pd.DataFrame, design: FindingsDesign) -> Finding:
    statistic = "Spearman rho across sampling schemes, mean seen-test loss vs mean unseen ICL loss"
    if len(design.sampling) < 2:
        return _not_run("T4", statistic, "fewer than two sampling schemes")
    seen = (seen_loss[seen_loss["split"] == "test"].groupby(["model", "task"])["loss"].mean()
            .groupby("model").mean())
    unseen = icl.groupby(["model", "task"])["loss"].mean().groupby("model").mean()
    schemes = [s for s in design.sampling if s in seen.index and s in unseen.index]
    result = spearman(seen.loc[schemes].to_numpy(), unseen.loc[schemes].to_numpy())
    if result.n < MIN_SCHEMES or not math.isfinite(result.p_value):
        verdict, reason = "inconclusive", (f"only {result.n} sampling schemes; at least {MIN_SCHEMES} are needed "
                                           f"for an exact p below 0.05")
    elif result.p_value < 0.05:
        verdict = "supported" if result.rho > 0 else "contradicted"
        reason = f"rho {result.rho:.3g}, exact p {result.p_value:.3g} < 0.05"
    else:
        verdict, reason = "inconclusive", f"rho {result.rho:.3g}, exact p {result.p_value:.3g} >= 0.05"
    return Finding("T4", CLAIMS["T4"], statistic, result.rho, None, result.p_value, result.n, verdict, reason)


def finding_t5(trajectory: pd.DataFrame | None, design: FindingsDesign) -> Finding:
    statistic = "rho(after) - rho(before) of few-shot vs ICL loss changes across tasks"
    if trajectory is None or design.trajectory_step is None:
        return _not_run("T5", statistic, "no checkpoint trajectory")
    changes = trajectory_changes(trajectory, design.trajectory_step, ["fewshot_loss", "icl_loss"])
    cols = ["fewshot_loss_before", "icl_loss_before", "fewshot_loss_after", "icl_loss_after"]
    values = changes[cols].to_numpy(dtype=np.float64)

    def gap(rows: np.ndarray) -> float:
        return spearman(rows[:, 2], rows[:, 3]).rho - spearman(rows[:, 0], rows[:, 1]).rho

    n = len(values)
    value = gap(values) if n >= 3 else None
    interval = _bootstrap(values, gap, design.n_boot, design.seed) if n >= 3 else None
    verdict, reason = interval_verdict(interval, 1, n, MIN_TASKS)
    return Finding("T5", CLAIMS["T5"], f"{statistic} (step {design.trajectory_step})",
                   None if value is None or not math.isfinite(value) else value, interval, None, n, verdict, reason)


def finding_t6(per_task: pd.DataFrame, design: FindingsDesign) -> Finding:
    statistic = "mean over tasks of few-shot loss, without - with unsupervised mixing (shots > 0)"
    if design.unsupervised is None:
        return _not_run("T6", statistic, "no (without, with) unsupervised-mixing pair")
    without, with_mixing = design.unsupervised
    diffs = _model_losses(per_task, without, "fewshot_loss") - _model_losses(per_task, with_mixing, "fewshot_loss")
    return _mean_finding("T6", statistic, diffs, design)


def transfer_findings(tables: dict[str, pd.DataFrame], design: FindingsDesign) -> list[Finding]:
    """T1-T6 in order (module docstring)."""
    per_task = tables["per_task"]
    return [finding_t1(per_task, design), finding_t2(per_task, design), finding_t3(per_task, design),
            finding_t4(tables["seen_loss"], tables["icl"], design), finding_t5(tables.get("trajectory"), design),
            finding_t6(per_task, design)]


def sanity_checks(fewshot: pd.DataFrame) -> pd.DataFrame:
    """Per model (and context): mean few-shot loss at 0 shots and at the largest shot count, and ``passes``.

    ``fewshot`` has one row per instance (``model``, ``context``, ``shots``, ``seed``, ``task``, ``loss``);
    losses are averaged per task first, then over tasks and seeds.  Empty when 0 is the only shot count."""
    rows: list[dict] = []
    largest = int(fewshot["shots"].max())
    if largest == 0:
        return pd.DataFrame(columns=["model", "context", "loss_at_0", "passes"])  # one shot count: not checkable
    for (model, context), part in fewshot.groupby(["model", "context"]):
        by_shots = part.groupby(["shots", "seed", "task"])["loss"].mean().groupby("shots").mean()
        zero = float(by_shots.get(0, math.nan))
        most = float(by_shots.get(largest, math.nan))
        rows.append({"model": model, "context": context, "loss_at_0": zero, f"loss_at_{largest}": most,
                     "passes": bool(most < zero) if math.isfinite(zero) and math.isfinite(most) else False})
    return pd.DataFrame(rows)


def support_warnings(findings: Sequence[Finding], n_tasks: int) -> list[str]:
    """Plain-language warnings for the report: too few tasks for any task-level claim, claims not run."""
    out = []
    if n_tasks < MIN_TASKS:
        out.append(f"Only {n_tasks} unseen tasks: no task-level claim can be decided (at least {MIN_TASKS} are "
                   f"needed); every such verdict below is 'inconclusive'.")
    small = [f.id for f in findings if 0 < f.n < MIN_TASKS and not f.reason.startswith("not run")]
    if small:
        out.append(f"Too few units to decide {', '.join(small)}.")
    skipped = [f.id for f in findings if f.reason.startswith("not run")]
    if skipped:
        out.append(f"Not run in this study: {', '.join(skipped)} (their models are not in the config).")
    return out
