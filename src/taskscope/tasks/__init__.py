"""Tasks: the data model, task sources, prompt formats and splits.  Imports nothing else from taskscope."""

from taskscope.tasks.core import Example, Instance, Task, TaskError, TaskSuite, Template
from taskscope.tasks.registry import load_suite, register_source

__all__ = ["Example", "Instance", "Task", "TaskError", "TaskSuite", "Template", "load_suite", "register_source"]
