"""The transfer report stage: figures and ``report.html`` from the analysis tables and findings."""

from __future__ import annotations

import pandas as pd

from taskscope.pipeline.config import dump_config
from taskscope.pipeline.stages import StageContext
from taskscope.studies.transfer.analysis import FINDINGS_FILE, TRANSFER_TABLES
from taskscope.studies.transfer.config import TransferConfig


def run_report(ctx: StageContext) -> None:
    from taskscope.report.transfer_report import write_transfer_report

    config: TransferConfig = ctx.config
    tables = {name: pd.read_csv(ctx.inputs["analysis"] / f"{name}.csv") for name in TRANSFER_TABLES
              if (ctx.inputs["analysis"] / f"{name}.csv").is_file()}
    from taskscope.analysis.findings import read_findings

    findings_path = ctx.inputs["analysis"] / FINDINGS_FILE
    findings = read_findings(findings_path) if findings_path.is_file() else []
    write_transfer_report(tables, ctx.out_dir, title=config.report.title or f"taskscope transfer study: {config.name}",
                          findings=findings,
                          config_text=dump_config(config), figure_formats=config.report.figure_formats,
                          trajectory_step=config.analyses.trajectory.step if config.analyses.trajectory else None)
