"""The transfer analysis stage: per-task scores, the model summary, every enabled analysis and the findings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from taskscope.common.files import atomic_write_text
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import read_tasks
from taskscope.studies.transfer.config import TransferConfig

FINDINGS_FILE = "findings.json"
TRANSFER_TABLES = ("fewshot", "icl", "seen_loss", "per_task", "transfer_curves", "correlations",
                   "change_correlation", "model_summary", "loss_by_task_size", "sampling_unseen", "data_limit",
                   "unsupervised", "trajectory", "trajectory_correlation", "sanity")


def _per_task(config: TransferConfig, fewshot: pd.DataFrame, icl: pd.DataFrame,
              clusters: dict[str, str]) -> pd.DataFrame:
    """One row per (model, shots, task): few-shot loss / ROUGE-L (first context, mean over seeds and instances)
    beside the ICL loss / ROUGE-L (first ``with_definition`` setting)."""
    shots = (fewshot[fewshot["context"] == config.fewshot.contexts[0]]
             .groupby(["model", "shots", "task"])[["loss", "rouge_l"]].mean()
             .rename(columns={"loss": "fewshot_loss", "rouge_l": "fewshot_rouge_l"}).reset_index())
    context = (icl[icl["with_definition"] == config.icl.with_definition[0]]
               .groupby(["model", "task"])[["loss", "rouge_l"]].mean()
               .rename(columns={"loss": "icl_loss", "rouge_l": "icl_rouge_l"}).reset_index())
    per_task = shots.merge(context, on=["model", "task"], how="inner")
    return per_task.assign(cluster=per_task["task"].map(clusters))


def _model_summary(fewshot: pd.DataFrame, icl: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
    """Long table ``model``, ``measure``, ``value``: task-averaged seen losses, ICL and few-shot scores."""
    rows = []
    for (model, split), part in seen.groupby(["model", "split"]):
        rows.append({"model": model, "measure": f"seen_{split}_loss", "value": part.groupby("task")["loss"].mean().mean()})
    for (model, with_definition), part in icl.groupby(["model", "with_definition"]):
        tag = "definition" if with_definition else "no definition"
        for metric in ("loss", "rouge_l"):
            rows.append({"model": model, "measure": f"icl_{metric} ({tag})",
                         "value": part.groupby("task")[metric].mean().mean()})
    for (model, context, shots), part in fewshot.groupby(["model", "context", "shots"]):
        for metric in ("loss", "rouge_l"):
            rows.append({"model": model, "measure": f"fewshot_{metric}@{shots} ({context})",
                         "value": part.groupby("task")[metric].mean().mean()})
    return pd.DataFrame(rows)


def analyse(config: TransferConfig, frames: dict[str, pd.DataFrame], clusters: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The analysis tables, in order: per-task scores, model summary, then every analysis ``config`` enables.

    * ``transfer_curves``: per model (and context, when several) and shot count, mean / std over seeds;
    * ``correlations``: Spearman rho, p between few-shot and ICL loss (and ROUGE-L) across unseen tasks, per model
      and shot count; ``change_correlation``: between their per-task changes from one model to another;
    * ``loss_by_task_size`` / ``sampling_unseen``: seen-task train / test loss binned by task size and unseen ICL
      scores, per sampling scheme (model);
    * ``data_limit``: the model summary of the models of the sweep, with their per-task data limit (column ``cap``);
    * ``unsupervised``: every measure without and with unsupervised mixing, and the difference;
    * ``trajectory_correlation``: correlations of the changes before and after the chosen checkpoint step.
    """
    from taskscope.analysis.correlation import loss_correlation, spearman, task_changes
    from taskscope.analysis.transfer import (
        loss_by_task_size,
        trajectory_correlation,
        transfer_curves,
    )

    fewshot, icl, seen = frames["fewshot"], frames["icl"], frames["seen_loss"]
    analyses = config.analyses
    per_task = _per_task(config, fewshot, icl, clusters)
    summary = _model_summary(fewshot, icl, seen)
    out = {"per_task": per_task, "model_summary": summary}
    if analyses.transfer_curves:
        several = len(config.fewshot.contexts) > 1
        series = fewshot["model"] + (" (" + fewshot["context"] + ")" if several else "")
        out["transfer_curves"] = transfer_curves(fewshot.assign(series=series), model_column="series")
    if analyses.correlations:
        out["correlations"] = pd.concat(
            [loss_correlation(per_task, "fewshot_loss", "icl_loss", by=["model", "shots"]),
             loss_correlation(per_task, "fewshot_rouge_l", "icl_rouge_l", by=["model", "shots"])], ignore_index=True)
        pair = config.change_pair()
        if pair is not None:
            rows = []
            for shots, part in per_task.groupby("shots"):
                changes = task_changes(part, ["fewshot_loss", "icl_loss"], before=pair[0], after=pair[1])
                result = spearman(changes["fewshot_loss"], changes["icl_loss"])
                rows.append({"before": pair[0], "after": pair[1], "shots": shots, "x": "fewshot_loss",
                             "y": "icl_loss", "rho": result.rho, "p_value": result.p_value, "n_tasks": result.n})
            out["change_correlation"] = pd.DataFrame(rows)
    if analyses.sampling is not None:
        chosen = seen[seen["model"].isin(analyses.sampling) & seen["split"].isin(["train", "test"])]
        out["loss_by_task_size"] = loss_by_task_size(chosen.rename(columns={"model": "scheme"}),
                                                     bins=analyses.task_size_bins, group="scheme")
        out["sampling_unseen"] = (icl[icl["model"].isin(analyses.sampling)]
                                  .groupby(["model", "with_definition", "task"])[["loss", "rouge_l"]].mean()
                                  .groupby(["model", "with_definition"]).mean().reset_index()
                                  .rename(columns={"loss": "icl_loss", "rouge_l": "icl_rouge_l"}))
    if analyses.data_limit is not None:
        caps = {name: config.train_config(name).data_limit for name in analyses.data_limit}
        part = summary[summary["model"].isin(caps)]
        out["data_limit"] = part.assign(cap=part["model"].map(caps)).sort_values(["measure", "cap"])
    if analyses.unsupervised is not None:
        without, with_mixing = analyses.unsupervised
        wide = summary.pivot(index="measure", columns="model", values="value")
        out["unsupervised"] = pd.DataFrame({"measure": wide.index, "without": wide[without].to_numpy(),
                                            "with": wide[with_mixing].to_numpy(),
                                            "difference": (wide[with_mixing] - wide[without]).to_numpy()})
    if analyses.trajectory is not None:
        step = analyses.trajectory.step
        out["trajectory_correlation"] = pd.concat(
            [trajectory_correlation(frames["trajectory"], step, "fewshot_loss", "icl_loss"),
             trajectory_correlation(frames["trajectory"], step, "fewshot_rouge_l", "icl_rouge_l")], ignore_index=True)
    return out


def run_analysis(ctx: StageContext) -> None:
    """The evaluation tables and every enabled analysis (:func:`analyse`) as CSV files."""
    config: TransferConfig = ctx.config
    frames = {"fewshot": pd.read_csv(ctx.inputs["fewshot"] / "fewshot.csv"),
              "icl": pd.read_csv(ctx.inputs["icl"] / "icl.csv"),
              "seen_loss": pd.read_csv(ctx.inputs["seen_eval"] / "seen_loss.csv")}
    if "trajectory" in ctx.inputs:
        frames["trajectory"] = pd.read_csv(ctx.inputs["trajectory"] / "trajectory.csv")
    clusters = {t: info["cluster"] for t, info in read_tasks(ctx.inputs["tasks"])["unseen"].items()}
    tables = {**frames, **analyse(config, frames, clusters)}
    from taskscope.analysis.transfer_findings import sanity_checks

    tables["sanity"] = sanity_checks(frames["fewshot"])  # the rule of docs/transfer.md, per model and context
    for name, table in tables.items():
        atomic_write_text(ctx.out_dir / f"{name}.csv", table.to_csv(index=False))
    write_study_findings(config, tables, ctx.out_dir / FINDINGS_FILE)


def findings_design(config: TransferConfig):
    """Which models each transfer claim compares, from the config (`analysis.transfer_findings.FindingsDesign`)."""
    from taskscope.analysis.transfer_findings import FindingsDesign

    analyses = config.analyses
    pair = config.change_pair()
    kinds = {m.name: m.kind for m in config.models}
    return FindingsDesign(
        pair=pair if pair and kinds[pair[0]] == "pretrained" and kinds[pair[1]] == "multitask" else None,
        data_limits={n: config.train_config(n).data_limit for n in analyses.data_limit or ()},
        sampling=tuple(analyses.sampling or ()), unsupervised=analyses.unsupervised,
        trajectory_step=analyses.trajectory.step if analyses.trajectory else None)


def write_study_findings(config: TransferConfig, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """``findings.json``: T1-T6 with verdicts (`analysis.transfer_findings`)."""
    from taskscope.analysis.findings import write_findings
    from taskscope.analysis.transfer_findings import transfer_findings

    write_findings(transfer_findings(tables, findings_design(config)), path)


def expected_tables(config: TransferConfig) -> list[str]:
    """The tables a run of ``config`` writes (the evaluations, per-task scores, summary and enabled analyses)."""
    analyses = config.analyses
    enabled = {"transfer_curves": analyses.transfer_curves, "correlations": analyses.correlations,
               "change_correlation": analyses.correlations and config.change_pair() is not None,
               "loss_by_task_size": analyses.sampling is not None, "sampling_unseen": analyses.sampling is not None,
               "data_limit": analyses.data_limit is not None, "unsupervised": analyses.unsupervised is not None,
               "trajectory": analyses.trajectory is not None, "trajectory_correlation": analyses.trajectory is not None}
    return [name for name in TRANSFER_TABLES if enabled.get(name, True)]


