"""The transfer study's report: figures (PNG/PDF) and one self-contained, interactive ``report.html``.

`write_transfer_report(tables, out_dir)`, in order:

1. for every table present, its figures (`taskscope.report.transfer_figures`, Mueller et al. Figures 1-4), each
   twice: matplotlib for papers (``transfer_curves_{rouge_l,loss}``, ``correlation_scatter`` (few-shot vs ICL
   loss at the largest shot count), ``change_scatter`` (their per-task changes between the two compared models),
   ``loss_by_task_size``, ``data_limit``, ``trajectory_{icl,fewshot}_loss``; saved to ``out_dir/figures`` in
   every requested format) and plotly for the page (task-labelled points, integer shot / step ticks);
2. the HTML: first the findings (T1-T6, `analysis.transfer_findings`: verdict, statistic, 95 % interval, p, n,
   reason), the warnings when the number of tasks or units cannot support a claim, and the sanity rule of
   docs/transfer.md (few-shot loss falls with shots, per model) with pass / FAIL; then one section per analysis
   with its interactive figures and its table, the per-task table (every model's few-shot and ICL scores per
   unseen task), a few sample predictions per task, then the config (``templates/transfer.html``, on the MOSSA
   report's layout and macros).  plotly.js is inlined once, so the page loads nothing from the network.

Each figure's data is prepared once (``TransferCurves.of(...)`` etc. in `transfer_figures`) and drawn by both
libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from taskscope.analysis.correlation import task_changes
from taskscope.analysis.findings import Finding
from taskscope.analysis.transfer_findings import sanity_checks, support_warnings
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import save_figure
from taskscope.report.templating import Table, render
from taskscope.report.transfer_figures import CorrelationScatter, DataLimit, TaskSizeLoss, Trajectory, TransferCurves

SAMPLES_PER_TASK = 3  # sample predictions shown per unseen task
TABLE_DIGITS = 4  # significant digits of the tables' numbers

SECTIONS = (
    ("transfer_curves", "Few-shot transfer curves (Figure 1)",
     ("Task-averaged test score after LoRA fine-tuning on n examples of each unseen task; bands: ± one "
      "standard deviation over seeds.")),
    ("correlations", "Few-shot fine-tuning vs in-context learning (Figure 2)",
     "Spearman ρ and two-sided p across unseen tasks, per model and shot count."),
    ("change_correlation", "Changes across models",
     "Spearman ρ between each task's change in few-shot loss and its change in ICL loss from one model to another."),
    ("loss_by_task_size", "Sampling schemes: seen-task loss by task size (Figure 3)",
     "Mean train / test loss per task-size bin (± standard error), one line per sampling scheme."),
    ("sampling_unseen", "Sampling schemes: unseen-task in-context scores", ""),
    ("data_limit", "Per-task data limit", "Every measure of the models of the data-limit sweep against their per-task limit."),
    ("unsupervised", "Unsupervised-mixing ablation", "Every measure without and with unsupervised steps."),
    ("trajectory_correlation", "Checkpoint trajectories (Figure 4)",
     "Per-task changes before and after the chosen step, and their Spearman correlations."),
    ("model_summary", "Model summary", "Task-averaged seen losses, ICL and few-shot scores of every model."),
)


Figures = dict[str, list[tuple[str, Figure, go.Figure]]]


def _pair(data) -> tuple[Figure, go.Figure]:
    return data.figure(), data.plot()


def _figures(tables: Mapping[str, pd.DataFrame], trajectory_step: int | None) -> Figures:
    """Section -> [(file stem, matplotlib figure, plotly figure)] for every table present (step 1); each
    figure's data is prepared once (`transfer_figures`) and drawn by both libraries."""
    figures: Figures = {}
    curves = tables.get("transfer_curves")
    if curves is not None and not curves.empty:
        figures["transfer_curves"] = [(f"transfer_curves_{metric}", *_pair(TransferCurves.of(curves, metric, "series")))
                                      for metric in ("rouge_l", "loss") if metric in set(curves["metric"])]
    per_task = tables.get("per_task")
    largest = None if per_task is None or per_task.empty else per_task[per_task["shots"] == per_task["shots"].max()]
    if "correlations" in tables and largest is not None:
        figures["correlations"] = [("correlation_scatter", *_pair(CorrelationScatter.of(largest, by="model")))]
    change = tables.get("change_correlation")
    if change is not None and not change.empty and largest is not None:
        before, after = change["before"].iloc[0], change["after"].iloc[0]
        changes = task_changes(largest, ["fewshot_loss", "icl_loss"], before=before, after=after)
        if not changes.empty:
            if "cluster" not in changes and "cluster" in largest:
                changes = changes.assign(cluster=changes["task"].map(largest.groupby("task")["cluster"].first()))
            data = CorrelationScatter.of(changes, by=None)
            figures["change_correlation"] = [("change_scatter", data.figure(),
                                              data.plot(prefix=f"change {before} → {after} in "))]
    if "loss_by_task_size" in tables and not tables["loss_by_task_size"].empty:
        figures["loss_by_task_size"] = [("loss_by_task_size", *_pair(TaskSizeLoss.of(tables["loss_by_task_size"])))]
    if "data_limit" in tables and not tables["data_limit"].empty:
        limit = tables["data_limit"]
        measures = [m for m in dict.fromkeys(limit["measure"]) if m.endswith("loss") or "loss@" in m][:4]
        figures["data_limit"] = [("data_limit", *_pair(DataLimit.of(limit, measures)))]
    trajectory = tables.get("trajectory")
    if trajectory is not None and not trajectory.empty:
        figures["trajectory_correlation"] = [(f"trajectory_{metric}", *_pair(Trajectory.of(trajectory, metric,
                                                                                         trajectory_step)))
                                             for metric in ("icl_loss", "fewshot_loss")]
    return figures


def per_task_table(per_task: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per unseen task at the largest shot count: cluster, then each model's few-shot / ICL scores."""
    if per_task is None or per_task.empty:
        return None
    largest = per_task[per_task["shots"] == per_task["shots"].max()]
    measures = [c for c in ("fewshot_loss", "icl_loss", "fewshot_rouge_l", "icl_rouge_l") if c in largest]
    wide = largest.pivot_table(index="task", columns="model", values=measures, aggfunc="first")
    wide.columns = [f"{model}: {measure} @{int(largest['shots'].iloc[0])}" if measure.startswith("fewshot")
                    else f"{model}: {measure}" for measure, model in wide.columns]
    wide = wide[sorted(wide.columns)]
    if "cluster" in largest:
        wide.insert(0, "cluster", largest.groupby("task")["cluster"].first())
    return wide.reset_index()


def sample_predictions(fewshot: pd.DataFrame | None, icl: pd.DataFrame | None,
                       per_task: int = SAMPLES_PER_TASK) -> pd.DataFrame | None:
    """The first ``per_task`` test instances of every unseen task: references, then every model's ICL
    prediction (first ``with_definition`` setting, largest k) and few-shot prediction (largest shot count, first
    seed and context), with ROUGE-L; an empty prediction shows as ``(empty)``."""
    parts = []
    if icl is not None and not icl.empty and "prediction" in icl:
        chosen = icl[(icl["with_definition"] == icl["with_definition"].iloc[0]) & (icl["k"] == icl["k"].max())]
        parts.append(chosen.assign(setting=f"ICL k={int(chosen['k'].iloc[0])}"))
    if fewshot is not None and not fewshot.empty and "prediction" in fewshot:
        most = int(fewshot["shots"].max())
        chosen = fewshot[(fewshot["shots"] == most) & (fewshot["seed"] == fewshot["seed"].min())
                         & (fewshot["context"] == fewshot["context"].iloc[0])]
        parts.append(chosen.assign(setting=f"fine-tuned, {most} shots"))
    if not parts:
        return None
    rows = pd.concat(parts, ignore_index=True)
    keep = {task: list(dict.fromkeys(part["instance_id"]))[:per_task] for task, part in rows.groupby("task")}
    rows = rows[[iid in keep[task] for task, iid in zip(rows["task"], rows["instance_id"])]]
    prediction = rows["prediction"].fillna("").astype(str).str.strip()
    rows = rows.assign(prediction=prediction.where(prediction != "", "(empty)"))
    return (rows[["task", "instance_id", "references", "model", "setting", "prediction", "rouge_l"]]
            .sort_values(["task", "instance_id", "model", "setting"], kind="stable").reset_index(drop=True))


def opening_view(findings: Sequence[Finding], tables: Mapping[str, pd.DataFrame]) -> dict:
    """The report's opening (step 2): the support warnings and the sanity rule's verdict and table."""
    fewshot = tables.get("fewshot")
    n_tasks = 0 if fewshot is None else int(fewshot["task"].nunique())
    view = {"warnings": support_warnings(findings, n_tasks) if findings else [], "sanity": None}
    if fewshot is not None and not fewshot.empty:
        sanity = sanity_checks(fewshot)
        if sanity.empty:
            verdict = "not checkable (0 is the only shot count)"
        else:
            verdict = "passes" if sanity["passes"].all() else "FAILS - read no finding of this run"
        view["sanity"] = {"verdict": verdict, "table": Table.of(sanity, digits=TABLE_DIGITS)}
    return view


def _table(frame: pd.DataFrame | None) -> Table | None:
    return None if frame is None else Table.of(frame, digits=TABLE_DIGITS)


def render_transfer_html(tables: Mapping[str, pd.DataFrame], plots: Mapping[str, Sequence[go.Figure]], *,
                         title: str, config_text: str, findings: Sequence[Finding] = ()) -> str:
    """The report page (``templates/transfer.html``): findings first, a section per analysis present
    (interactive figures + table), the per-task table, sample predictions, the config."""
    sections = [{"heading": heading, "text": text, "figures": list(plots.get(name, [])),
                 "table": _table(tables.get(name))}
                for name, heading, text in SECTIONS if name in tables or name in plots]
    fewshot, icl = tables.get("fewshot"), tables.get("icl")
    counts = None
    if fewshot is not None and icl is not None:
        counts = {"models": fewshot["model"].nunique(), "tasks": fewshot["task"].nunique(),
                  "shots": sorted(set(fewshot["shots"])), "seeds": sorted(set(fewshot["seed"])),
                  "k": sorted(set(icl["k"]))}
    return render("transfer.html", title=title, config_text=config_text, counts=counts, findings=findings,
                  opening=opening_view(findings, tables), analyses=sections,
                  per_task=_table(per_task_table(tables.get("per_task"))),
                  samples=_table(sample_predictions(fewshot, icl)), samples_per_task=SAMPLES_PER_TASK)


def write_transfer_report(tables: Mapping[str, pd.DataFrame], out_dir: Path, *, title: str, config_text: str = "",
                          figure_formats: Sequence[str] = ("png", "pdf"), trajectory_step: int | None = None,
                          findings: Sequence[Finding] = ()) -> Path:
    """Write ``out_dir/figures/*`` and ``out_dir/report.html`` (atomically); returns the report's path."""
    out_dir = Path(out_dir)
    plots: dict[str, list[go.Figure]] = {}
    for section, figures in _figures(tables, trajectory_step).items():
        for stem, fig, plot in figures:
            plots.setdefault(section, []).append(plot)
            save_figure(fig, out_dir / "figures" / stem, figure_formats)
    path = out_dir / "report.html"
    atomic_write_text(path, render_transfer_html(tables, plots, title=title, config_text=config_text,
                                                 findings=findings))
    return path
