"""In-context learning on a task: k exemplars in the prompt, never any of the test instances.

`evaluate_icl(loaded, task, test_instances)`, in order:

1. choose the exemplars (`choose_exemplars`): from ``pool`` (e.g. the task's few-shot pool) when given,
   ``k`` instances drawn without replacement by a generator seeded with ``hash(seed, task name)``; otherwise
   the first ``k`` of the task's positive examples (as Tk-Instruct and the paper do), skipping one whose input
   is a test instance's input.  The same exemplars serve every test
   instance of the task;
2. refuse overlap (`ExemplarOverlapError`, naming the task and the offending ids / inputs): a pool instance
   whose id is a test id, or a positive example whose input equals a test instance's input;
3. format every test instance (`taskscope.tasks.formats.format_instance`) with ``fmt``'s templates (default:
   Tk-Instruct's; e.g. ``named_format("mueller_context")`` for the paper's Figure 5 layout) and kind
   ``definition_exemplars`` (``with_definition=True``) or ``exemplars``, ``n_exemplars=k`` (k = 0: kind
   ``definition`` or ``none``), under the token budget of ``settings`` (`prompt_budget`: exemplars are dropped
   first; a prompt that still does not fit is cut in its definition, then its input, and a
   `PromptTruncationWarning` gives the counts);
4. `evaluate_examples`: per-instance ``prediction``, ``rouge_l``, ``exact_match`` and ``loss``, plus the
   columns ``k`` and ``with_definition``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from taskscope.tasks.core import Example, Instance, Task
from taskscope.tasks.formats import PromptFormat, format_instance, warn_truncation
from taskscope.tasks.splits import seed_from

from .cache import EvalCache
from .examples import EvalSettings, evaluate_examples, prompt_budget


class ExemplarOverlapError(ValueError):
    """In-context exemplars that are also test instances."""


def choose_exemplars(task: Task, k: int, *, pool: Sequence[Instance] | None = None, seed: int = 0,
                     avoid: Sequence[Instance] = ()) -> list[Example | Instance]:
    """``k`` exemplars: a seeded draw from ``pool`` or the first ``k`` positive examples whose input is not the
    input of an instance in ``avoid`` (the test instances; SNI positive examples can repeat one) (step 1)."""
    if k < 0:
        raise ValueError(f"task {task.name!r}: k must be >= 0, got {k}")
    if pool is None:
        taken = {inst.input.strip() for inst in avoid if inst.input}
        available: Sequence[Example | Instance] = [ex for ex in task.positive_examples if ex.input.strip() not in taken]
        source = "positive examples" + (" not among the test inputs" if len(available) < len(task.positive_examples)
                                        else "")
        chosen = list(available[:k])
    else:
        available, source = pool, "few-shot pool"
        rng = np.random.default_rng(seed_from(seed, task.name))
        chosen = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    if len(chosen) < k:
        raise ValueError(f"task {task.name!r}: {k} exemplars asked for, its {source} hold only {len(available)}")
    return chosen


def check_disjoint(task: Task, exemplars: Sequence[Example | Instance], test_instances: Sequence[Instance]) -> None:
    """Raise `ExemplarOverlapError` when an exemplar is a test instance (step 2)."""
    test_ids = {inst.id for inst in test_instances}
    test_inputs = {inst.input.strip() for inst in test_instances if inst.input}
    shared_ids = sorted(ex.id for ex in exemplars if isinstance(ex, Instance) and ex.id in test_ids)
    shared_inputs = sorted(ex.input for ex in exemplars if isinstance(ex, Example) and ex.input.strip() in test_inputs)
    if shared_ids or shared_inputs:
        detail = f"instance ids {shared_ids}" if shared_ids else f"inputs {shared_inputs}"
        raise ExemplarOverlapError(f"task {task.name!r}: in-context exemplars overlap the test instances ({detail})")


def icl_format(k: int, with_definition: bool, base: PromptFormat | None = None) -> PromptFormat:
    """The prompt format of step 3: ``base``'s templates (default Tk-Instruct's) with the kind and ``k``."""
    if k == 0:
        kind = "definition" if with_definition else "none"
    else:
        kind = "definition_exemplars" if with_definition else "exemplars"
    return (base or PromptFormat()).model_copy(update={"kind": kind, "n_exemplars": k})


def evaluate_icl(
    loaded: Any,
    task: Task,
    test_instances: Sequence[Instance],
    *,
    k: int = 3,
    pool: Sequence[Instance] | None = None,
    with_definition: bool = True,
    fmt: PromptFormat | None = None,
    seed: int = 0,
    settings: EvalSettings | None = None,
    cache: EvalCache | None = None,
) -> pd.DataFrame:
    """Per-instance in-context scores of ``loaded`` on ``test_instances``; see the module docstring.
    Adds the columns ``k``, ``with_definition``, ``dropped_exemplars`` and ``cut_words``."""
    if not test_instances:
        raise ValueError(f"task {task.name!r}: no test instances to evaluate")
    exemplars = choose_exemplars(task, k, pool=pool, seed=seed, avoid=test_instances)
    check_disjoint(task, exemplars, test_instances)
    settings = settings or EvalSettings()
    budget, count = prompt_budget(loaded, settings)
    prompt_format = icl_format(k, with_definition, fmt).model_copy(update={"max_prompt_tokens": budget})
    examples = [format_instance(task, inst, prompt_format, exemplars=exemplars, seed=seed, position=i,
                                count_tokens=count) for i, inst in enumerate(test_instances)]
    warn_truncation(examples, budget, where=f"ICL on task {task.name!r} (k={k})")
    frame = evaluate_examples(loaded, examples, settings, cache=cache)
    frame["k"] = k
    frame["with_definition"] = with_definition
    frame["dropped_exemplars"] = [ex.dropped_exemplars for ex in examples]
    frame["cut_words"] = [ex.cut_words for ex in examples]
    return frame
