"""The transfer study's report: figures (PNG/PDF) and one self-contained ``report.html``.

`write_transfer_report(tables, out_dir)`, in order:

1. for every table present, its figures (`taskscope.report.transfer_figures`, Mueller et al. Figures 1-4):
   ``transfer_curves_{rouge_l,loss}``, ``correlation_scatter`` (few-shot vs ICL loss at the largest shot count),
   ``change_scatter`` (their per-task changes between the two compared models), ``loss_by_task_size``,
   ``data_limit``, ``trajectory_{icl,fewshot}_loss``; each saved to ``out_dir/figures`` in every requested format;
2. the HTML: first the findings (T1-T6, `analysis.transfer_findings`: verdict, statistic, 95 % interval, p, n,
   reason), the warnings when the number of tasks or units cannot support a claim, and the sanity rule of
   docs/transfer.md (few-shot loss falls with shots, per model) with pass / FAIL; then one section per analysis
   with its figure embedded as a base64 PNG and its table, then the config; the page loads nothing from the
   network (same style sheet as the MOSSA report).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from taskscope.analysis.correlation import task_changes
from taskscope.analysis.findings import Finding
from taskscope.analysis.transfer_findings import sanity_checks, support_warnings
from taskscope.common.files import atomic_write_text
from taskscope.report.figures import save_figure
from taskscope.report.html import STYLE
from taskscope.report.transfer_figures import (
    correlation_scatter_figure,
    task_size_figure,
    trajectory_figure,
    transfer_curve_figure,
)

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


def _figures(tables: Mapping[str, pd.DataFrame], trajectory_step: int | None) -> dict[str, list[tuple[str, Figure]]]:
    """Section -> [(file stem, figure)] for every table present (step 1)."""
    figures: dict[str, list[tuple[str, Figure]]] = {}
    curves = tables.get("transfer_curves")
    if curves is not None and not curves.empty:
        figures["transfer_curves"] = [(f"transfer_curves_{metric}", transfer_curve_figure(curves, metric, "series"))
                                      for metric in ("rouge_l", "loss") if metric in set(curves["metric"])]
    per_task = tables.get("per_task")
    if "correlations" in tables and per_task is not None and not per_task.empty:
        largest = per_task[per_task["shots"] == per_task["shots"].max()]
        figures["correlations"] = [("correlation_scatter", correlation_scatter_figure(largest, by="model"))]
    change = tables.get("change_correlation")
    if change is not None and not change.empty and per_task is not None:
        before, after = change["before"].iloc[0], change["after"].iloc[0]
        largest = per_task[per_task["shots"] == per_task["shots"].max()]
        changes = task_changes(largest, ["fewshot_loss", "icl_loss"], before=before, after=after)
        if not changes.empty:
            figures["change_correlation"] = [("change_scatter", correlation_scatter_figure(changes, by=None))]
    if "loss_by_task_size" in tables and not tables["loss_by_task_size"].empty:
        figures["loss_by_task_size"] = [("loss_by_task_size", task_size_figure(tables["loss_by_task_size"]))]
    if "data_limit" in tables and not tables["data_limit"].empty:
        measures = [m for m in dict.fromkeys(tables["data_limit"]["measure"]) if m.endswith("loss") or "loss@" in m]
        figures["data_limit"] = [("data_limit", data_limit_figure(tables["data_limit"], measures[:4]))]
    trajectory = tables.get("trajectory")
    if trajectory is not None and not trajectory.empty:
        figures["trajectory_correlation"] = [(f"trajectory_{metric}", trajectory_figure(trajectory, metric, trajectory_step))
                                             for metric in ("icl_loss", "fewshot_loss")]
    return figures


def _png_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3g}"


def findings_html(findings: Sequence[Finding], tables: Mapping[str, pd.DataFrame]) -> str:
    """The report's opening: verdicts, support warnings and the sanity rule (step 2)."""
    fewshot = tables.get("fewshot")
    n_tasks = 0 if fewshot is None else int(fewshot["task"].nunique())
    rows = "".join(
        f"<tr><td>{html.escape(f.id)}</td><td><b>{html.escape(f.verdict)}</b></td><td>{html.escape(f.claim)}</td>"
        f"<td>{html.escape(f.statistic)}</td><td>{_number(f.value)}</td>"
        f"<td>{'–' if f.interval is None else '[' + _number(f.interval[0]) + ', ' + _number(f.interval[1]) + ']'}</td>"
        f"<td>{_number(f.p_value)}</td><td>{f.n}</td><td>{html.escape(f.reason)}</td></tr>" for f in findings)
    out = ""
    if findings:
        out += ("<h2>Findings</h2><table><tr><th>id</th><th>verdict</th><th>claim</th><th>statistic</th><th>value</th>"
                f"<th>95 % interval</th><th>p</th><th>n</th><th>reason</th></tr>{rows}</table>")
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


def render_transfer_html(tables: Mapping[str, pd.DataFrame], images: Mapping[str, list[tuple[str, str]]], *,
                         title: str, config_text: str, findings: Sequence[Finding] = ()) -> str:
    """The report page: findings first, a section per analysis present (embedded PNGs + table), the config."""
    blocks = []
    for name, heading, text in SECTIONS:
        table = tables.get(name)
        if table is None and name not in images:
            continue
        body = "".join(f'<figure><img alt="{html.escape(stem)}" src="data:image/png;base64,{data}"></figure>'
                       for stem, data in images.get(name, []))
        if table is not None:
            body += table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")
        blocks.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>{body}")
    fewshot, icl = tables.get("fewshot"), tables.get("icl")
    summary = ""
    if fewshot is not None and icl is not None:
        summary = (f"<p>{fewshot['model'].nunique()} models, {fewshot['task'].nunique()} unseen tasks, shots "
                   f"{sorted(set(fewshot['shots']))}, seeds {sorted(set(fewshot['seed']))}, ICL k = "
                   f"{sorted(set(icl['k']))}.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}
img{{max-width:100%}}</style></head>
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
    images: dict[str, list[tuple[str, str]]] = {}
    for section, figures in _figures(tables, trajectory_step).items():
        for stem, fig in figures:
            images.setdefault(section, []).append((stem, _png_base64(fig)))
            save_figure(fig, out_dir / "figures" / stem, figure_formats)
    path = out_dir / "report.html"
    atomic_write_text(path, render_transfer_html(tables, images, title=title, config_text=config_text,
                                                 findings=findings))
    return path
