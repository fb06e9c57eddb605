"""The MOSSA study kind (``study: mossa``, the default): CKA between each compared model and per-task controls,
layer by layer (Zhao et al., EMNLP 2024).  Importing this package registers it in the study registry."""

from taskscope.pipeline.kinds import StudyKind, register_study
from taskscope.studies.mossa.config import RENAMED, MossaConfig
from taskscope.studies.mossa.report import run_report
from taskscope.studies.mossa.run import MossaRun
from taskscope.studies.mossa.stages import expected_tables, mossa_stages
from taskscope.studies.mossa.validate import mossa_plugin_problems, mossa_task_problems

MOSSA = register_study(StudyKind(
    id="mossa", config_model=MossaConfig, stages=mossa_stages, view=MossaRun, expected_tables=expected_tables,
    report=run_report, plugin_problems=mossa_plugin_problems, task_problems=mossa_task_problems, renamed=RENAMED))

__all__ = ["MOSSA", "MossaConfig", "MossaRun", "mossa_stages"]
