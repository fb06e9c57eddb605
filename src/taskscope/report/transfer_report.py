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
   unseen task), a few sample predictions per task, then the config.  plotly.js is inlined once, so the page
   loads nothing from the network (same style sheet as the MOSSA report).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from taskscope.analysis.correlation import task_changes
from taskscope.analysis.findings import Finding
from taskscope.analysis.transfer_findings import sanity_checks, support_warnings
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import save_figure
from taskscope.report.html import STYLE, findings_table
from taskscope.report.transfer_figures import (
    correlation_scatter_figure,
    correlation_scatter_plot,
    data_limit_plot,
    task_size_figure,
    task_size_plot,
    trajectory_figure,
    trajectory_plot,
    transfer_curve_figure,
    transfer_curve_plot,
)

SAMPLES_PER_TASK = 3  # sample predictions shown per unseen task

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


def data_limit_figure(table: pd.DataFrame, measures: Sequence[str]) -> Figure:
    """One panel per measure: its value against the per-task data limit (log x axis)."""
    fig, axes = plt.subplots(1, len(measures), figsize=(4.0 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        part = table[table["measure"] == measure].sort_values("cap")
        ax.plot(part["cap"], part["value"], marker="o")
        ax.set_xscale("log")
        ax.set_xlabel("per-task data limit")
        ax.set_title(measure, fontsize=9)
    fig.tight_layout()
    return fig


Figures = dict[str, list[tuple[str, Figure, go.Figure]]]


def _figures(tables: Mapping[str, pd.DataFrame], trajectory_step: int | None) -> Figures:
    """Section -> [(file stem, matplotlib figure, plotly figure)] for every table present (step 1)."""
    figures: Figures = {}
    curves = tables.get("transfer_curves")
    if curves is not None and not curves.empty:
        figures["transfer_curves"] = [
            (f"transfer_curves_{metric}", transfer_curve_figure(curves, metric, "series"),
             transfer_curve_plot(curves, metric, "series"))
            for metric in ("rouge_l", "loss") if metric in set(curves["metric"])]
    per_task = tables.get("per_task")
    if "correlations" in tables and per_task is not None and not per_task.empty:
        largest = per_task[per_task["shots"] == per_task["shots"].max()]
        figures["correlations"] = [("correlation_scatter", correlation_scatter_figure(largest, by="model"),
                                    correlation_scatter_plot(largest, by="model"))]
    change = tables.get("change_correlation")
    if change is not None and not change.empty and per_task is not None:
        before, after = change["before"].iloc[0], change["after"].iloc[0]
        largest = per_task[per_task["shots"] == per_task["shots"].max()]
        changes = task_changes(largest, ["fewshot_loss", "icl_loss"], before=before, after=after)
        if not changes.empty:
            if "cluster" not in changes and "cluster" in largest:
                changes = changes.assign(cluster=changes["task"].map(largest.groupby("task")["cluster"].first()))
            figures["change_correlation"] = [("change_scatter", correlation_scatter_figure(changes, by=None),
                                              correlation_scatter_plot(changes, by=None,
                                                                       prefix=f"change {before} → {after} in "))]
    if "loss_by_task_size" in tables and not tables["loss_by_task_size"].empty:
        bins = tables["loss_by_task_size"]
        figures["loss_by_task_size"] = [("loss_by_task_size", task_size_figure(bins), task_size_plot(bins))]
    if "data_limit" in tables and not tables["data_limit"].empty:
        limit = tables["data_limit"]
        measures = [m for m in dict.fromkeys(limit["measure"]) if m.endswith("loss") or "loss@" in m][:4]
        figures["data_limit"] = [("data_limit", data_limit_figure(limit, measures), data_limit_plot(limit, measures))]
    trajectory = tables.get("trajectory")
    if trajectory is not None and not trajectory.empty:
        figures["trajectory_correlation"] = [
            (f"trajectory_{metric}", trajectory_figure(trajectory, metric, trajectory_step),
             trajectory_plot(trajectory, metric, trajectory_step)) for metric in ("icl_loss", "fewshot_loss")]
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


def findings_html(findings: Sequence[Finding], tables: Mapping[str, pd.DataFrame]) -> str:
    """The report's opening: verdicts (the MOSSA report's findings table), support warnings and the sanity rule
    (step 2)."""
    fewshot = tables.get("fewshot")
    n_tasks = 0 if fewshot is None else int(fewshot["task"].nunique())
    out = f"<h2>Findings</h2>{findings_table(findings)}" if findings else ""
    warnings = support_warnings(findings, n_tasks) if findings else []
    if warnings:
        out += "<div class='warning'><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>"
    if fewshot is not None and not fewshot.empty:
        sanity = sanity_checks(fewshot)
        if sanity.empty:
            verdict = "not checkable (0 is the only shot count)"
        else:
            verdict = "passes" if sanity["passes"].all() else "FAILS - read no finding of this run"
        out += (f"<h3>Sanity rule: the few-shot loss of every model falls with shots on average — {verdict}</h3>"
                + sanity.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    return out


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")


def render_transfer_html(tables: Mapping[str, pd.DataFrame], plots: Mapping[str, Sequence[go.Figure]], *,
                         title: str, config_text: str, findings: Sequence[Finding] = ()) -> str:
    """The report page: findings first, a section per analysis present (interactive figures + table), the
    per-task table, sample predictions, the config; the first figure carries plotly.js inline."""
    blocks, n_figures = [], 0

    def figure_html(fig: go.Figure) -> str:
        nonlocal n_figures
        n_figures += 1
        return fig.to_html(full_html=False, include_plotlyjs=(n_figures == 1), config={"displaylogo": False})

    for name, heading, text in SECTIONS:
        table = tables.get(name)
        if table is None and name not in plots:
            continue
        body = "".join(f"<figure>{figure_html(fig)}</figure>" for fig in plots.get(name, []))
        if table is not None:
            body += _table_html(table)
        blocks.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>{body}")
    wide = per_task_table(tables.get("per_task"))
    if wide is not None:
        blocks.append("<h2>Per-task scores</h2><p>Every unseen task at the largest shot count: few-shot fine-tuning "
                      "(mean over seeds and test instances) and in-context scores of every model.</p>"
                      + _table_html(wide))
    samples = sample_predictions(tables.get("fewshot"), tables.get("icl"))
    if samples is not None:
        blocks.append(f"<h2>Sample predictions</h2><p>The first {SAMPLES_PER_TASK} test instances of every unseen "
                      "task, with every model's in-context and fine-tuned prediction (all-zero ROUGE-L is visible "
                      "here as what the model actually wrote).</p>" + _table_html(samples))
    fewshot, icl = tables.get("fewshot"), tables.get("icl")
    summary = ""
    if fewshot is not None and icl is not None:
        summary = (f"<p>{fewshot['model'].nunique()} models, {fewshot['task'].nunique()} unseen tasks, shots "
                   f"{sorted(set(fewshot['shots']))}, seeds {sorted(set(fewshot['seed']))}, ICL k = "
                   f"{sorted(set(icl['k']))}.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}
figure{{margin:0.5em 0}}</style></head>
<body><h1>{html.escape(title)}</h1>{summary}
{findings_html(findings, tables)}
{''.join(blocks)}
<h2>Study config</h2><pre>{html.escape(config_text)}</pre>
</body></html>
"""


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
