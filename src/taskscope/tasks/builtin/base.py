"""How a builtin task is declared and turned into a :class:`~taskscope.tasks.core.Task`.

A builtin task is a *generator* ``(rng, label) -> record`` plus its description and templates,
declared with :func:`builtin_task`::

    @builtin_task("sentiment_negation", cluster="sentiment", domains=("reviews",),
                  definition="...", templates=(Template(...), ...), labels=("positive", "negative"))
    def _negation(rng, label): ...

The record is a ``dict`` of field values; ``label`` (classification tasks) or ``answer``
(generation tasks) holds the target, ``answers`` optionally several references, and
``rationale`` a one-sentence explanation used for the demonstrations.

:func:`build_task` builds a task in this order:

1. seed a private :class:`random.Random` from ``sha256(f"{seed}/{name}/...")`` (stable across processes);
2. draw 3 positive examples from their own stream, rendered with template 0, and one negative
   example (the first example's input with the second example's output);
3. draw instances from the instance stream; classification labels cycle through shuffled
   blocks of all labels, so the counts differ by at most one;
4. redraw (up to :data:`MAX_REDRAWS` times) any record whose template-0 input was already seen
   (examples included), so inputs are unique unless the task's space of inputs is exhausted;
5. give instance ``i`` the id ``f"{name}-{seed}-{i}"``, its ``fields`` record and template 0's rendering.

Instance ``i`` depends only on ``(seed, name, i)``'s prefix of the stream, so a smaller
``n_instances`` gives a prefix of a larger one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskscope.tasks.core import Example, Instance, Task, TaskError, Template

Record = dict[str, Any]
Generator = Callable[[random.Random, "str | None"], Record]

MAX_REDRAWS = 50
N_POSITIVE_EXAMPLES = 3


@dataclass(frozen=True)
class BuiltinTaskSpec:
    """A declared builtin task: metadata, templates and the record generator."""

    name: str
    cluster: str
    domains: tuple[str, ...]
    definition: str
    templates: tuple[Template, ...]
    generate: Generator
    labels: tuple[str, ...] = ()
    finite: bool = False

    @property
    def task_type(self) -> str:
        return "classification" if self.labels else "generation"


TASK_SPECS: dict[str, BuiltinTaskSpec] = {}

# the builtin clusters, in the order of the FLAN 2021 cluster list (suites list tasks in this order)
CLUSTERS = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text", "translation",
            "reading_comprehension", "coreference", "summarization", "arithmetic", "program_execution")


def builtin_task(
    name: str,
    *,
    cluster: str,
    domains: tuple[str, ...],
    definition: str,
    templates: tuple[Template, ...],
    labels: tuple[str, ...] = (),
    finite: bool = False,
) -> Callable[[Generator], Generator]:
    """Register a record generator as the builtin task ``name`` (needs at least 3 templates).

    ``finite=True`` declares that the task has only a few hundred distinct inputs (a fixed set of
    facts), so large ``n_instances`` repeat inputs; it is recorded as ``metadata["finite_inputs"]``.
    """

    def decorate(generate: Generator) -> Generator:
        if name in TASK_SPECS:
            raise TaskError("builtin task declared twice", task=name, field="name")
        if cluster not in CLUSTERS:
            raise TaskError(f"unknown builtin cluster {cluster!r}; add it to CLUSTERS", task=name, field="cluster")
        if len(templates) < 3:
            raise TaskError("a builtin task needs at least 3 templates", task=name, field="templates")
        TASK_SPECS[name] = BuiltinTaskSpec(name, cluster, domains, definition, tuple(templates), generate, labels, finite)
        return generate

    return decorate


def stable_rng(*parts: object) -> random.Random:
    """A :class:`random.Random` seeded from the sha256 of the parts (never the salted built-in ``hash``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _label_cycle(rng: random.Random, labels: tuple[str, ...]):
    """Endless labels in shuffled blocks of one of each (balanced to within one)."""
    while True:
        block = list(labels)
        rng.shuffle(block)
        yield from block


def _draw_unique(spec: BuiltinTaskSpec, rng: random.Random, label: str | None, seen: set[str]) -> tuple[Record, str]:
    template = spec.templates[0]
    for _ in range(MAX_REDRAWS):
        record = spec.generate(rng, label)
        text, _ = template.render(record, task=spec.name)
        if text not in seen:
            break
    seen.add(text)
    return record, text


def _check_record(spec: BuiltinTaskSpec, record: Record, label: str | None) -> None:
    if spec.labels and record.get("label") != label:
        raise TaskError(f"generator returned label {record.get('label')!r}, asked for {label!r}",
                        task=spec.name, field="label")


def _negative_examples(examples: list[Example]) -> tuple[Example, ...]:
    """One wrong demonstration: the first example's input with the second example's (different) output."""
    first, second = examples[0], examples[1]
    if first.output == second.output:
        return ()
    why = f"The output should be \"{first.output}\", not \"{second.output}\". {first.explanation}".strip()
    return (Example(first.input, second.output, why),)


def build_task(spec: BuiltinTaskSpec, *, n_instances: int, seed: int) -> Task:
    """Generate ``n_instances`` instances and the demonstrations of one builtin task (see module doc)."""
    if n_instances < 0:
        raise TaskError(f"n_instances must be >= 0, got {n_instances}", task=spec.name, field="n_instances")
    seen: set[str] = set()
    example_rng = stable_rng(seed, spec.name, "examples")
    example_labels = _label_cycle(example_rng, spec.labels) if spec.labels else None
    examples = []
    for _ in range(N_POSITIVE_EXAMPLES):
        label = next(example_labels) if example_labels else None
        record, text = _draw_unique(spec, example_rng, label, seen)
        _, outputs = spec.templates[0].render(record, task=spec.name)
        examples.append(Example(text, outputs[0], record.get("rationale", "")))
    negatives = _negative_examples(examples)

    instance_rng = stable_rng(seed, spec.name, "instances")
    labels = _label_cycle(stable_rng(seed, spec.name, "labels"), spec.labels) if spec.labels else None
    instances = []
    for i in range(n_instances):
        label = next(labels) if labels else None
        record, text = _draw_unique(spec, instance_rng, label, seen)
        _check_record(spec, record, label)
        _, outputs = spec.templates[0].render(record, task=spec.name)
        instances.append(Instance(f"{spec.name}-{seed}-{i}", text, outputs, record))

    metadata: dict[str, Any] = {"task_type": spec.task_type, "seed": seed, "finite_inputs": spec.finite}
    if spec.labels:
        metadata["labels"] = list(spec.labels)
    return Task(
        name=spec.name,
        instances=tuple(instances),
        clusters=(spec.cluster,),
        definition=spec.definition,
        positive_examples=tuple(examples),
        negative_examples=negatives,
        domains=spec.domains,
        source="builtin",
        templates=spec.templates,
        metadata=metadata,
    )
