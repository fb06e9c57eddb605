"""What a MOSSA config's pydantic model cannot check alone (the kind's ``plugin_problems`` / ``task_problems``)."""

from __future__ import annotations

from typing import Any

from taskscope.pipeline.validate import Problem, name_problems, plugin_problems, sampler_problems
from taskscope.studies.common.validate import selection_problems
from taskscope.studies.mossa.config import MossaConfig


def mossa_plugin_problems(config: MossaConfig) -> list[Problem]:
    """The sampler of both training sections, the kernels and their arguments, the extra measures."""
    problems = sampler_problems("control_training", config.control_training)
    problems += sampler_problems("instruction_tuning", config.instruction_tuning)
    problems += kernel_problems(config.similarity.kernels, config.similarity.kernel_args)
    return problems + measure_problems(config.similarity.measures)


def kernel_problems(kernels: list[str], kernel_args: dict[str, dict[str, Any]]) -> list[Problem]:
    from taskscope.similarity.kernels import KERNELS, get_kernel

    problems = []
    for i, name in enumerate(kernels):
        found = plugin_problems(KERNELS, name, kernel_args.get(name), f"similarity.kernels.{i}",
                                f"similarity.kernel_args.{name}")
        if found:
            problems += found
            continue
        try:
            get_kernel(name, **kernel_args.get(name, {}))
        except (TypeError, ValueError) as err:
            problems.append(Problem(f"similarity.kernel_args.{name}", str(err)))
    for name in sorted(set(kernel_args) - set(kernels)):
        problems.append(Problem(f"similarity.kernel_args.{name}",
                                f"arguments for kernel {name!r}, which is not in similarity.kernels {kernels}"))
    return problems


def measure_problems(measures: list) -> list[Problem]:
    """Every extra measure: a registered name, parameters its parameter model accepts, no label twice."""
    from taskscope.analysis.measures import measure_label
    from taskscope.similarity import MEASURES

    problems, labels = [], set()
    for i, spec in enumerate(measures):
        problems += plugin_problems(MEASURES, spec.name, spec.params, f"similarity.measures.{i}.name",
                                    f"similarity.measures.{i}.params")
        label = measure_label(spec.name, spec.params)
        if label in labels:
            problems.append(Problem(f"similarity.measures.{i}", f"measure {label!r} is listed twice"))
        labels.add(label)
    return problems


def mossa_task_problems(config: MossaConfig) -> list[Problem]:
    """Load the suite, check ``tasks.tasks`` / ``tasks.clusters``, then each model's held-out names."""
    from taskscope.studies.mossa.tasks import select_suite

    suite, problems = selection_problems(config.tasks)
    if problems:
        return problems
    try:
        selected = select_suite(config, suite)  # the suite loaded above: the source is read once
    except ValueError as err:
        return [Problem("tasks", str(err))]
    primary = {task.cluster for task in selected}
    for i, model in enumerate(config.models):
        where = f"models.{i}"
        problems += name_problems(f"{where}.heldout_tasks", model.heldout_tasks, selected.names, "selected task")
        problems += name_problems(f"{where}.heldout_clusters", model.heldout_clusters, primary, "selected cluster")
        held = set(model.heldout_tasks)
        if model.kind == "multitask" and all(t.name in held or t.cluster in model.heldout_clusters for t in selected):
            problems.append(Problem(where, f"model {model.name!r} holds out every selected task; it has nothing to "
                                    "train on"))
    return problems
