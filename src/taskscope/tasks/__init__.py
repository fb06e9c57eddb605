"""Tasks: the data model, task sources, prompt formats and splits.  Imports nothing else from taskscope."""

from taskscope.tasks.core import Dropped, Example, Instance, Task, TaskError, TaskSuite, Template
from taskscope.tasks.formats import (
    FORMAT_KINDS,
    FormattedExample,
    PromptFormat,
    format_instance,
    format_task,
    label_tokens,
)
from taskscope.tasks.registry import load_suite, register_source
from taskscope.tasks.splits import (
    SuiteSplit,
    TaskSplit,
    cap_instances,
    split_suite,
    split_task,
)

__all__ = [
    "FORMAT_KINDS",
    "Dropped",
    "Example",
    "FormattedExample",
    "Instance",
    "PromptFormat",
    "SuiteSplit",
    "Task",
    "TaskError",
    "TaskSplit",
    "TaskSuite",
    "Template",
    "cap_instances",
    "format_instance",
    "format_task",
    "label_tokens",
    "load_suite",
    "register_source",
    "split_suite",
    "split_task",
]
