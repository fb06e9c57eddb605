"""The study pipeline: config, cached stages, executors, and the run folder read back as :class:`Run`."""

from taskscope.pipeline.config import ConfigError, StudyConfig, load_config
from taskscope.pipeline.run import Run, open_run, rebuild_report, run_command, run_study

__all__ = ["ConfigError", "Run", "StudyConfig", "load_config", "open_run", "rebuild_report", "run_command", "run_study"]
