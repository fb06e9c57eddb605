"""Reports from a study's tables: the MOSSA report stage and `build_report(run_dir)`, which rebuilds the report of
a finished run folder (``taskscope report RUN``) from what the run wrote, without recomputing anything.

Order of operations in :func:`mossa_report` (shared by both):

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

from taskscope.pipeline.manifest import MANIFEST_FILE, manifest_table
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
    from taskscope.pipeline.config import dump_config
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
        baseline=config.report.baseline_model)


def build_report(run_dir: str | Path) -> Path:
    """Rebuild ``run_dir/report.html`` and ``run_dir/figures/`` of a finished MOSSA run; returns the report's path.

    Reads only what the run wrote (its published tables, ``study.yaml``, ``manifest.json`` and the training
    logs in the stage folders that ``stages.json`` names); a missing table is a one-line error.
    """
    from taskscope.pipeline.transfer_config import TransferStudyConfig, load_study_config

    run_dir = Path(run_dir)
    if not (run_dir / "study.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: not a finished run folder (no study.yaml)")
    config = load_study_config(run_dir / "study.yaml")
    if isinstance(config, TransferStudyConfig):
        raise NotImplementedError(f"{run_dir}: a transfer run; its report is rebuilt by the transfer study")
    for name in ("mossa.csv", "layer_map.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: no {name}; run the study to the end first")
    stages = json.loads((run_dir / "stages.json").read_text()) if (run_dir / "stages.json").is_file() else {}
    stage_dirs = {name: run_dir / entry["folder"] for name, entry in stages.items() if name in ROLES}
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text()) if (run_dir / MANIFEST_FILE).is_file() else None
    return mossa_report(config, similarity=run_dir, analysis=run_dir, control_scores=run_dir, out_dir=run_dir,
                        stage_dirs=stage_dirs, manifest=manifest)
