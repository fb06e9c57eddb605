"""The study engine: configs of any registered study kind, cached stages, executors, run folders read back.

Study kinds (``mossa``, ``transfer``, plug-ins) are members of :data:`taskscope.pipeline.kinds.STUDIES`; their
packages live in :mod:`taskscope.studies` and are imported through the registry only.
"""

from taskscope.pipeline.config import ConfigError, StudyConfigBase, config_from_dict, load_config
from taskscope.pipeline.kinds import STUDIES, StudyKind
from taskscope.pipeline.run import open_run, rebuild_report, run_command, run_study
from taskscope.pipeline.view import RunView

__all__ = ["STUDIES", "ConfigError", "RunView", "StudyConfigBase", "StudyKind", "config_from_dict", "load_config",
           "open_run", "rebuild_report", "run_command", "run_study"]
