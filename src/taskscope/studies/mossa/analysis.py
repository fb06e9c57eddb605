"""The MOSSA similarity and analysis stages: CKA per layer, the noise ceiling, the layer map and the findings."""

from __future__ import annotations

import pandas as pd

from taskscope.common.files import atomic_write_text
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import read_tasks
from taskscope.studies.mossa.config import MossaConfig
from taskscope.studies.mossa.extract import load_states
from taskscope.studies.mossa.training import control_item, seen_tasks


def run_similarity(ctx: StageContext) -> None:
    from taskscope.analysis.measures import measure_table
    from taskscope.analysis.mossa import DIFFERENCE_COLUMNS, mossa_differences, mossa_table

    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    controls = {t: load_states(ctx.inputs["extract"], f"control-{t}")[t] for t in tasks}
    experimental = {m: load_states(ctx.inputs["extract"], f"exp-{m}") for m in config.model_names()}
    heldout = {m.name: set(tasks) - set(seen_tasks(config, tasks, m.name))
               for m in config.models if m.kind == "multitask"}
    sim = config.similarity
    table = mossa_table(experimental, controls, {t: info["cluster"] for t, info in tasks.items()},
                        heldout=heldout, **_mossa_options(config))
    atomic_write_text(ctx.out_dir / "mossa.csv", table.to_csv(index=False))
    baseline = config.baseline_model
    diffs = (mossa_differences(experimental, controls, {t: info["cluster"] for t, info in tasks.items()}, baseline,
                               n_permutations=sim.bootstrap.n_resamples, **_mossa_options(config))
             if len(experimental) > 1 and baseline in experimental else pd.DataFrame(columns=DIFFERENCE_COLUMNS))
    atomic_write_text(ctx.out_dir / "differences.csv", diffs.to_csv(index=False))
    measures = measure_table(experimental, controls, {t: info["cluster"] for t, info in tasks.items()},
                             [(m.name, m.params) for m in sim.measures], heldout=heldout)
    atomic_write_text(ctx.out_dir / "measures.csv", measures.to_csv(index=False))


def _mossa_options(config: MossaConfig) -> dict:
    sim = config.similarity
    return {"kernels": sim.kernels, "debiased": sim.debiased, "n_bootstrap": sim.bootstrap.n_resamples,
            "interval": sim.bootstrap.interval, "confidence": sim.bootstrap.confidence, "seed": sim.bootstrap.seed,
            "kernel_args": sim.kernel_args}


def run_ceiling(ctx: StageContext) -> None:
    """Seed-to-seed CKA of every task's replicate controls (``ceiling.csv``; empty with one control seed)."""
    from taskscope.analysis.ceiling import ceiling_table

    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    replicates = {}
    if config.control_seeds > 1:
        replicates = {t: [load_states(ctx.inputs["extract"], f"control-{control_item(t, seed)}")[t]
                          for seed in range(config.control_seeds)] for t in tasks}
    table = ceiling_table(replicates, {t: info["cluster"] for t, info in tasks.items()}, **_mossa_options(config))
    atomic_write_text(ctx.out_dir / "ceiling.csv", table.to_csv(index=False))


def run_analysis(ctx: StageContext) -> None:
    """Layer map, aggregates, the ceiling comparison and the findings with their verdicts."""
    from taskscope.analysis import cluster_summary, find_layer_map, layer_summary
    from taskscope.analysis.ceiling import compare_to_ceiling
    from taskscope.analysis.findings import write_findings
    from taskscope.analysis.measures import AGREEMENT_COLUMNS, measure_agreement, measures_finding
    from taskscope.analysis.mossa_findings import mossa_findings
    from taskscope.analysis.sensitivity import topk_flips

    config: MossaConfig = ctx.config
    table = pd.read_csv(ctx.inputs["similarity"] / "mossa.csv")
    ceiling = pd.read_csv(ctx.inputs["ceiling"] / "ceiling.csv")
    controls = pd.read_csv(ctx.inputs["control_scores"] / "controls.csv")
    layer_map = find_layer_map(table, config.layer_map)
    atomic_write_text(ctx.out_dir / "layer_map.json", layer_map.to_json())
    atomic_write_text(ctx.out_dir / "layer_summary.csv", layer_summary(table).to_csv(index=False))
    atomic_write_text(ctx.out_dir / "cluster_summary.csv", cluster_summary(table).to_csv(index=False))
    comparison = compare_to_ceiling(table, ceiling)
    atomic_write_text(ctx.out_dir / "ceiling_comparison.csv", comparison.to_csv(index=False))
    sensitivity = topk_flips(table, config.layer_map)
    findings = mossa_findings(table, layer_map, config.layer_map, controls=controls, comparison=comparison,
                              baseline=config.baseline_model,
                              heldout_models=[m.name for m in config.models
                                              if m.heldout_tasks or m.heldout_clusters], sensitivity=sensitivity)
    measures = pd.read_csv(ctx.inputs["similarity"] / "measures.csv")
    agreement = (measure_agreement(measures, table, config.baseline_model, alpha=config.layer_map.alpha)
                 if len(measures) and config.baseline_model in set(table["experimental_model"])
                 else pd.DataFrame(columns=AGREEMENT_COLUMNS))
    atomic_write_text(ctx.out_dir / "measure_agreement.csv", agreement.to_csv(index=False))
    if len(measures):
        findings.append(measures_finding(agreement))
    write_findings(findings, ctx.out_dir / "findings.json", extra={"sensitivity": sensitivity})


