"""Check a validated study config against the registries and the task source, before any work starts.

Pydantic (each study kind's config model) checks each field on its own.  What it cannot check, because
it needs the plug-in registries or the data, is checked here, so that ``taskscope run`` fails in the first
second instead of after every control is trained:

1. the executor, the model spec (``tiny:ARCH`` architectures, local model folders, GGUF files, LoRA
   adapters) and ``model_options``, then the study kind's plug-ins (``STUDIES[kind].plugin_problems``: every
   sampler and its ``sampler_kwargs`` in every training section, every kernel and its ``kernel_args``, ...);
2. the task source (``STUDIES[kind].task_problems``, built from :func:`load_source` and :func:`name_problems`):
   its prefix, then the suite itself is loaded, and every task, cluster, held-out / unseen name, per-task cap
   and split folder is checked against it.

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

from taskscope.pipeline.config import ConfigError, StudyConfigBase
from taskscope.pipeline.kinds import STUDIES
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


def validate_study(config: StudyConfigBase, *, source: str = "<config>", executor: str = "local",
                   load_tasks: bool = True) -> None:
    """Raise :class:`ConfigError` listing every problem :func:`check_study` finds (nothing when there is none)."""
    problems = check_study(config, executor=executor, load_tasks=load_tasks)
    if problems:
        raise ConfigError("\n".join([f"invalid study config {source}:"] + [f"  {p}" for p in problems]))


def check_study(config: StudyConfigBase, *, executor: str = "local", load_tasks: bool = True) -> list[Problem]:
    """Every problem of ``config`` (steps 1-2 of the module docstring); ``load_tasks=False`` skips step 2."""
    kind = STUDIES.lookup(config.study)
    problems = executor_problems(executor) + model_problems("model", config.model)
    problems += model_option_problems(config.model, config.model_options)
    problems += kind.plugin_problems(config)
    if load_tasks and not problems:  # loading the suite can take a while: only for an otherwise sound config
        problems += kind.task_problems(config)
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


def sampler_problems(where: str, train: Any) -> list[Problem]:
    """An unknown ``sampler`` of a ``TrainConfig``, or ``sampler_kwargs`` its class does not take (tried on two toy
    tasks)."""
    name, kwargs = train.sampler, train.sampler_kwargs
    if name is None:
        return [Problem(f"{where}.sampler_kwargs", "set without a sampler")] if kwargs else []
    from taskscope.train.samplers import SAMPLERS, make_sampler

    problems = plugin_problems(SAMPLERS, name, kwargs, f"{where}.sampler", f"{where}.sampler_kwargs")
    if problems:
        return problems
    try:  # values the parameter model cannot judge alone (e.g. a window < 1): build it on two toy tasks
        make_sampler(name, [8, 16], seed=0, total_steps=10, **kwargs)
    except (TypeError, ValueError) as err:
        return [Problem(f"{where}.sampler_kwargs", f"sampler {name!r}: {err}")]
    return []


# ---------------------------------------------------------------- tasks
def load_source(source: str, options: dict[str, Any], where: str) -> tuple[Any, list[Problem]]:
    """The suite a task source spec loads, or None and the problems of its prefix and options."""
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


def name_problems(where: str, names: list[str] | None, known: Iterable[str], what: str) -> list[Problem]:
    known = list(known)
    return [Problem(f"{where}", f"no {what} {name!r} in the task source{suggestion(name, known, f'{what}s')}")
            for name in names or () if name not in known]


def clusters_of(suite: Any) -> set[str]:
    """Every category of every task, and every ``A`` of a category ``A -> B`` (SNI's sub-categories)."""
    found = set()
    for task in suite:
        for cluster in task.clusters or (task.cluster,):
            found.update({cluster, cluster.split(" -> ")[0]})
    return found
