"""Check a validated study config against the registries and the task source, before any work starts.

Pydantic (``config.py``, ``transfer_config.py``) checks each field on its own.  What it cannot check, because
it needs the plug-in registries or the data, is checked here, so that ``taskscope run`` fails in the first
second instead of after every control is trained:

1. the executor, every model spec (``tiny:ARCH`` architectures, local model folders, GGUF files, LoRA
   adapters), every sampler and its ``sampler_kwargs`` in every training section, every kernel and its
   ``kernel_args``;
2. the task source: its prefix, then the suite itself is loaded, and every task, cluster, held-out / unseen
   name, per-task cap and split folder is checked against it.

Every problem is collected (not just the first); :func:`validate_study` raises one
:class:`~taskscope.pipeline.config.ConfigError` with a line per problem, each naming the field and, for a name
close to a registered one, ``did you mean ...?``.  :func:`check_study` returns the problems instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskscope.pipeline.config import ConfigError, StudyConfig
from taskscope.pipeline.transfer_config import TransferStudyConfig
from taskscope.registry import Registry, RegistryError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the dotted field and what to do about it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def suggestion(name: str, known: Iterable[str], what: str = "known") -> str:
    """``"; did you mean 'x'?"`` for a close match (difflib), else the known names (at most 12)."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = ", ".join(repr(k) for k in known[:12]) + (", ..." if len(known) > 12 else "")
    return f"; {what}: {shown}" if known else ""


def validate_study(config: StudyConfig | TransferStudyConfig, *, source: str = "<config>", executor: str = "local",
                   load_tasks: bool = True) -> None:
    """Raise :class:`ConfigError` listing every problem :func:`check_study` finds (nothing when there is none)."""
    problems = check_study(config, executor=executor, load_tasks=load_tasks)
    if problems:
        label = "transfer study config" if isinstance(config, TransferStudyConfig) else "study config"
        raise ConfigError("\n".join([f"invalid {label} {source}:"] + [f"  {p}" for p in problems]))


def check_study(config: StudyConfig | TransferStudyConfig, *, executor: str = "local",
                load_tasks: bool = True) -> list[Problem]:
    """Every problem of ``config`` (steps 1-2 of the module docstring); ``load_tasks=False`` skips step 2."""
    problems = executor_problems(executor) + model_problems("model", config.model)
    problems += model_option_problems(config.model, config.model_options)
    if isinstance(config, TransferStudyConfig):
        sections = {"instruction_tuning": config.instruction_tuning, "fewshot.train": config.fewshot.train}
        sections |= {f"models.{i}.train": config.train_config(m.name) for i, m in enumerate(config.models)
                     if m.kind == "multitask" and m.train}
        if config.tasks.split_dir is not None and not Path(config.tasks.split_dir).is_dir():
            problems.append(Problem("tasks.split_dir", f"folder {str(config.tasks.split_dir)!r} does not exist"))
    else:
        sections = {"control_training": config.control_training, "multitask_training": config.multitask_training}
        problems += kernel_problems(config.similarity.kernels, config.similarity.kernel_args)
        problems += measure_problems(config.similarity.measures)
    for where, section in sections.items():
        problems += sampler_problems(where, section)
    if load_tasks and not problems:  # loading the suite can take a while: only for an otherwise sound config
        problems += (transfer_task_problems(config) if isinstance(config, TransferStudyConfig)
                     else mossa_task_problems(config))
    return problems


# ---------------------------------------------------------------- plug-ins
def plugin_problems(registry: Registry, name: str, params: dict[str, Any] | None, where: str,
                    params_where: str) -> list[Problem]:
    """An unknown member of ``registry``, or ``params`` its parameter model rejects (field named)."""
    if name not in registry:
        return [Problem(where, f"unknown {registry.kind} {name!r}{suggestion(name, registry.names(), 'known')}")]
    try:
        registry.check_params(name, params)
    except RegistryError as err:
        return [Problem(params_where, str(err))]
    return []


def executor_problems(name: str) -> list[Problem]:
    from taskscope.pipeline.executors.base import EXECUTORS

    return plugin_problems(EXECUTORS, name, None, "executor", "executor")


def model_problems(where: str, spec: str) -> list[Problem]:
    """A model spec that does not parse, names an unknown tiny architecture, or points to a missing file."""
    from taskscope.models.spec import ModelSpecError, parse_spec

    try:
        parsed = parse_spec(spec)
    except ModelSpecError as err:
        return [Problem(where, str(err))]
    problems = []
    if parsed.kind == "tiny":
        from taskscope.models.tiny import TINY_ARCHS

        if parsed.location not in TINY_ARCHS:
            problems.append(Problem(where, f"unknown tiny architecture {parsed.location!r} in {spec!r}"
                                    f"{suggestion(parsed.location, TINY_ARCHS, 'known architectures')}"))
    elif parsed.kind == "gguf" and not Path(parsed.location).expanduser().is_file():
        problems.append(Problem(where, f"GGUF file {parsed.location!r} does not exist"))
    elif parsed.kind == "pretrained":
        path = Path(parsed.location).expanduser()
        # the rule of models.loading: a hub id is 'owner/name'; anything else that looks like a path is local
        looks_local = path.exists() or parsed.location.startswith((".", "/", "~")) or parsed.location.count("/") > 1
        if looks_local and not path.is_dir():
            problems.append(Problem(where, f"model folder {parsed.location!r} does not exist; give a local "
                                    "checkpoint folder, a hub id 'owner/name', 'embedded' or 'tiny:ARCH'"))
    if parsed.lora_adapter is not None and not Path(parsed.lora_adapter).expanduser().is_dir():
        problems.append(Problem(where, f"LoRA adapter folder {parsed.lora_adapter!r} does not exist"))
    return problems


def model_option_problems(spec: str, options: Any) -> list[Problem]:
    """A ``model_options.revision`` for a model that is not a hub id (a revision pins a hub checkpoint only)."""
    from taskscope.models.loading import is_hub_id
    from taskscope.models.spec import ModelSpecError, parse_spec

    try:
        hub = is_hub_id(parse_spec(spec))
    except ModelSpecError:
        return []  # reported by model_problems
    if options.revision is not None and not hub:
        return [Problem("model_options.revision", f"revision {options.revision!r} applies to a Hugging Face hub id; "
                        f"model {spec!r} is not one (a local folder, tiny, GGUF or embedded model has no revisions)")]
    return []


def sampler_problems(where: str, train: dict[str, Any]) -> list[Problem]:
    """An unknown ``sampler``, or ``sampler_kwargs`` its class does not take (tried on two toy tasks)."""
    name = train.get("sampler")
    if name is None:
        return [Problem(f"{where}.sampler_kwargs", "set without a sampler")] if train.get("sampler_kwargs") else []
    from taskscope.train.samplers import SAMPLERS, make_sampler

    problems = plugin_problems(SAMPLERS, name, train.get("sampler_kwargs"), f"{where}.sampler", f"{where}.sampler_kwargs")
    if problems:
        return problems
    try:  # values the parameter model cannot judge alone (e.g. a window < 1): build it on two toy tasks
        make_sampler(name, [8, 16], seed=0, total_steps=10, **train.get("sampler_kwargs", {}))
    except (TypeError, ValueError) as err:
        return [Problem(f"{where}.sampler_kwargs", f"sampler {name!r}: {err}")]
    return []


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


# ---------------------------------------------------------------- tasks
def _load(source: str, options: dict[str, Any], where: str) -> tuple[Any, list[Problem]]:
    from taskscope.tasks import TaskError, load_suite
    from taskscope.tasks.registry import SOURCES, parse_spec

    prefix, _ = parse_spec(source)
    if prefix not in SOURCES:
        return None, [Problem(f"{where}.source", f"unknown task source {prefix!r}{suggestion(prefix, SOURCES.names())}")]
    accepted = list(SOURCES.params_model(prefix).model_fields)
    unknown = [name for name in options if name not in accepted]
    if unknown:
        return None, [Problem(f"{where}.options.{name}", f"source {prefix!r} takes no option {name!r}"
                              f"{suggestion(name, accepted, 'its options')}") for name in unknown]
    problems = plugin_problems(SOURCES, prefix, options, f"{where}.source", f"{where}.options")
    if problems:
        return None, problems
    try:
        return load_suite(source, **options), []
    except TaskError as err:
        return None, [Problem(f"{where}.source", str(err))]


def _name_problems(where: str, names: list[str] | None, known: Iterable[str], what: str) -> list[Problem]:
    known = list(known)
    return [Problem(f"{where}", f"no {what} {name!r} in the task source{suggestion(name, known, f'{what}s')}")
            for name in names or () if name not in known]


def _clusters_of(suite: Any) -> set[str]:
    """Every category of every task, and every ``A`` of a category ``A -> B`` (SNI's sub-categories)."""
    found = set()
    for task in suite:
        for cluster in task.clusters or (task.cluster,):
            found.update({cluster, cluster.split(" -> ")[0]})
    return found


def mossa_task_problems(config: StudyConfig) -> list[Problem]:
    """Load the suite, check ``tasks.tasks`` / ``tasks.clusters``, then each model's held-out names."""
    from taskscope.pipeline.study import select_suite

    sel = config.tasks
    suite, problems = _load(sel.source, sel.options, "tasks")
    if suite is None:
        return problems
    problems += _name_problems("tasks.tasks", sel.tasks, suite.names, "task")
    problems += _name_problems("tasks.clusters", sel.clusters, _clusters_of(suite), "cluster")
    if problems:
        return problems
    try:
        selected = select_suite(config)
    except ValueError as err:
        return [Problem("tasks", str(err))]
    primary = {task.cluster for task in selected}
    for i, model in enumerate(config.experimental_models):
        where = f"experimental_models.{i}"
        problems += _name_problems(f"{where}.heldout_tasks", model.heldout_tasks, selected.names, "selected task")
        problems += _name_problems(f"{where}.heldout_clusters", model.heldout_clusters, primary, "selected cluster")
        held = set(model.heldout_tasks)
        if model.kind == "multitask" and all(t.name in held or t.cluster in model.heldout_clusters for t in selected):
            problems.append(Problem(where, f"model {model.name!r} holds out every selected task; it has nothing to "
                                    "train on"))
    return problems


def transfer_task_problems(config: TransferStudyConfig) -> list[Problem]:
    """Load the suite, check the task / cluster / unseen names and caps, then split it as the tasks stage will."""
    from taskscope.pipeline.transfer_study import _split_suite, _tasks_key
    from taskscope.tasks import TaskError

    sel = config.tasks
    suite, problems = _load(sel.source, sel.options, "tasks")
    if suite is None:
        return problems
    clusters = _clusters_of(suite)
    problems += _name_problems("tasks.tasks", sel.tasks, suite.names, "task")
    problems += _name_problems("tasks.clusters", sel.clusters, clusters, "cluster")
    problems += _name_problems("tasks.unseen_tasks", sel.unseen_tasks, suite.names, "task")
    problems += _name_problems("tasks.unseen_clusters", sel.unseen_clusters, clusters, "cluster")
    problems += _name_problems("tasks.caps", list(sel.caps), suite.names, "task")
    if problems:
        return problems
    try:  # the same (cached) split the tasks stage uses, so it is not computed twice in one process
        _split_suite(_tasks_key(sel.model_dump(mode="json")))
    except (TaskError, KeyError, ValueError) as err:
        problems.append(Problem("tasks", str(err).strip("\"'")))
    return problems
