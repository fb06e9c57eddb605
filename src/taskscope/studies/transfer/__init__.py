"""The transfer study kind (``study: transfer``): instruction tuning on seen tasks, then few-shot LoRA and in-context
learning on unseen ones (Mueller, Dredze and Andrews).  Importing this package registers it in the study registry."""

from taskscope.pipeline.kinds import StudyKind, register_study
from taskscope.studies.transfer.analysis import expected_tables
from taskscope.studies.transfer.config import RENAMED, TransferConfig
from taskscope.studies.transfer.report import run_report
from taskscope.studies.transfer.run import TransferRun
from taskscope.studies.transfer.stages import transfer_stages
from taskscope.studies.transfer.validate import transfer_plugin_problems, transfer_task_problems

TRANSFER = register_study(StudyKind(
    id="transfer", config_model=TransferConfig, stages=transfer_stages, view=TransferRun,
    expected_tables=expected_tables, report=run_report, plugin_problems=transfer_plugin_problems,
    task_problems=transfer_task_problems, renamed=RENAMED))

__all__ = ["TRANSFER", "TransferConfig", "TransferRun", "transfer_stages"]
