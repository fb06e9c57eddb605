"""Tasks: the data model, task sources, prompt formats and splits.  Imports nothing else from taskscope."""

from taskscope.tasks.core import Example, Instance, Task, TaskError, TaskSuite, Template

__all__ = ["Example", "Instance", "Task", "TaskError", "TaskSuite", "Template"]
