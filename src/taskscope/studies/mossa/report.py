"""The MOSSA report from a study's tables: what the report stage runs, and what
:func:`taskscope.pipeline.run.rebuild_report` (``taskscope report RUN``) runs again on a finished run's stage
folders, recomputing nothing.

Order of operations in :func:`mossa_report`:

1. read the tables (``mossa.csv``, ``differences.csv``; ``layer_map.json``, ``findings.json``,
   ``ceiling_comparison.csv``, ``cluster_summary.csv``; ``controls.csv``), each from the folder given for it;
2. gather the training logs (``log.jsonl``) of every control and experimental model (:func:`training_logs`);
3. flatten the manifest into rows (:func:`~taskscope.pipeline.manifest.manifest_table`);
4. write ``figures/`` and ``report.html`` into ``out_dir`` (:func:`taskscope.report.write_report`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from taskscope.pipeline.config import dump_config
from taskscope.pipeline.manifest import manifest_so_far, manifest_table
from taskscope.pipeline.stages import StageContext
from taskscope.train.logging import LOG_FILE, read_log

ROLES = {"controls": "control", "experimental": "experimental"}


def training_logs(stage_dirs: Mapping[str, Path]) -> pd.DataFrame:
    """Rows (role, model, kind, step, loss) from every ``items/{model}/**/log.jsonl`` of the ``controls`` and
    ``experimental`` stage folders (``model``: the item, e.g. ``nli@s1``; ``kind``: ``train`` or ``eval``)."""
    rows: list[dict[str, Any]] = []
    for stage, role in ROLES.items():
        folder = stage_dirs.get(stage)
        if folder is None or not (Path(folder) / "items").is_dir():
            continue
        for item in sorted(p for p in (Path(folder) / "items").iterdir() if p.is_dir()):
            for log in sorted(item.rglob(LOG_FILE)):
                rows += [{"role": role, "model": item.name, "kind": record["kind"], "step": record["step"],
                          "loss": record["loss"]}
                         for record in read_log(log) if record.get("kind") in ("train", "eval") and "loss" in record]
    return pd.DataFrame(rows, columns=["role", "model", "kind", "step", "loss"])


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def mossa_report(config, *, similarity: Path, analysis: Path, control_scores: Path, out_dir: Path,
                 stage_dirs: Mapping[str, Path], manifest: Mapping[str, Any] | None) -> Path:
    """Write the MOSSA report of ``config`` into ``out_dir`` from the tables in the given folders (module docstring)."""
    from taskscope.analysis.findings import read_findings
    from taskscope.analysis.layer_map import LayerMap
    from taskscope.report import write_report

    analysis, similarity = Path(analysis), Path(similarity)
    findings = analysis / "findings.json"
    return write_report(
        pd.read_csv(similarity / "mossa.csv"),
        LayerMap.from_dict(json.loads((analysis / "layer_map.json").read_text())), out_dir,
        title=config.report.title or f"taskscope MOSSA study: {config.name}", config_text=dump_config(config),
        figure_formats=config.report.figure_formats,
        findings=read_findings(findings) if findings.is_file() else (),
        controls=_csv(Path(control_scores) / "controls.csv"), comparison=_csv(analysis / "ceiling_comparison.csv"),
        differences=_csv(similarity / "differences.csv"), cluster_summary=_csv(analysis / "cluster_summary.csv"),
        training_logs=training_logs(stage_dirs), manifest=manifest_table(manifest) if manifest else None,
        baseline=config.baseline_model)


def run_report(ctx: StageContext) -> None:
    """The report stage: :func:`mossa_report` from the tables upstream, with the manifest of the stages so far."""
    mossa_report(ctx.config, similarity=ctx.inputs["similarity"], analysis=ctx.inputs["analysis"],
                 control_scores=ctx.inputs["control_scores"], out_dir=ctx.out_dir, stage_dirs=ctx.inputs,
                 manifest=manifest_so_far(ctx))
