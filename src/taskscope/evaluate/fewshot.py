"""Transfer by fine-tuning: LoRA on n examples of an unseen task, then test ROUGE-L and loss.

`evaluate_fewshot(base, task, train_pool, test_instances)`, for every seed and shot count n, in order:

1. the n training instances: the first n of a permutation of ``train_pool`` seeded by
   ``hash(seed, task name)``, so the subsets are nested across shot counts (5 of them are among the 10);
   a pool instance that is also a test instance raises `ExemplarOverlapError`; a pool smaller than the
   largest shot count raises ``ValueError``;
2. format them and the test instances with ``fmt`` (the task context: default ``definition``; use
   ``PromptFormat(kind="none")`` for fine-tuning without it, ``task_id`` for the task name only; a context
   with exemplars uses ``fmt.n_exemplars`` of them), each under its token budget: the test prompts under
   ``settings``' (`prompt_budget`), the training prompts under ``train_config``'s ``max_length -
   max_target_length`` - exemplars go first, and anything cut is reported by a `PromptTruncationWarning`;
3. n = 0: no training, the base model is evaluated once and its rows repeated for every seed; otherwise a
   deep copy of ``base`` is fine-tuned with `taskscope.train.train_fewshot` (``train_config`` with its
   seed replaced by the run's seed; defaults LoRA r 16, alpha 32, dropout 0.05, constant lr 1e-3, 5 epochs,
   batch 32, as the paper)
   into ``out_root/<task>/shots-<n>/seed-<seed>`` (a finished run there is reloaded, not retrained);
4. `evaluate_examples` on the test instances.  With a cache, the result of one (base fingerprint, task,
   examples, training config, n, seed) is stored, so a rerun neither retrains nor re-evaluates it.

Returns one row per (seed, n, test instance): ``task``, ``shots``, ``seed``, ``instance_id``,
``references``, ``prediction``, ``rouge_l``, ``exact_match``, ``loss``, ``context`` (the format kind).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taskscope.tasks.core import Instance, Task
from taskscope.tasks.formats import PromptFormat, format_task
from taskscope.tasks.splits import seed_from
from taskscope.train import TrainConfig, train_fewshot
from taskscope.train.data import prompt_token_budget

from .cache import EvalCache, hash_examples
from .examples import EvalSettings, evaluate_examples, prompt_budget
from .icl import check_disjoint

DEFAULT_SHOTS: tuple[int, ...] = (0, 5, 10, 20, 40)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)


def fewshot_instances(task: Task, pool: Sequence[Instance], n: int, seed: int) -> list[Instance]:
    """The first ``n`` instances of ``pool`` in the order seeded by ``hash(seed, task name)`` (step 1)."""
    if n > len(pool):
        raise ValueError(f"task {task.name!r}: {n} shots asked for, the training pool holds {len(pool)} instances")
    order = np.random.default_rng(seed_from(seed, task.name)).permutation(len(pool))
    return [pool[i] for i in order[:n]]


def _run(base: Any, train_examples: Sequence[Any], test_examples: Sequence[Any], config: TrainConfig,
         out_dir: Path, settings: EvalSettings) -> pd.DataFrame:
    if not train_examples:
        return evaluate_examples(base, test_examples, settings)
    loaded = copy.deepcopy(base)
    train_fewshot(loaded, train_examples, config, out_dir)
    return evaluate_examples(loaded, test_examples, settings)


def evaluate_fewshot(
    base: Any,
    task: Task,
    train_pool: Sequence[Instance],
    test_instances: Sequence[Instance],
    *,
    out_root: str | Path,
    shots: Sequence[int] = DEFAULT_SHOTS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    fmt: PromptFormat | None = None,
    train_config: TrainConfig | None = None,
    settings: EvalSettings | None = None,
    cache: EvalCache | None = None,
) -> pd.DataFrame:
    """Few-shot transfer of ``base`` (a `LoadedModel`, left unchanged) to ``task``; see the module docstring."""
    if not test_instances:
        raise ValueError(f"task {task.name!r}: no test instances to evaluate")
    if not seeds:
        raise ValueError("at least one seed is needed")
    if any(n < 0 for n in shots):
        raise ValueError(f"shot counts must be >= 0, got {list(shots)}")
    check_disjoint(task, list(train_pool), test_instances)
    fmt = fmt or PromptFormat(kind="definition")
    config = train_config or TrainConfig(schedule="constant")
    settings = settings or EvalSettings()
    eval_budget, count = prompt_budget(base, settings)
    test_examples = format_task(task, test_instances, fmt.model_copy(update={"max_prompt_tokens": eval_budget}),
                                count_tokens=count)
    train_fmt = fmt.model_copy(update={"max_prompt_tokens": prompt_token_budget(config.max_length,
                                                                                config.max_target_length)})
    parts = []
    for n in sorted(set(shots)):
        for seed in seeds if n else seeds[:1]:
            train_examples = format_task(task, fewshot_instances(task, train_pool, n, seed), train_fmt, seed=seed,
                                         count_tokens=count)
            run_config = config.model_copy(update={"seed": seed})
            out_dir = Path(out_root) / task.name / f"shots-{n}" / f"seed-{seed}"

            def compute(train_examples=train_examples, run_config=run_config, out_dir=out_dir) -> dict[str, list[Any]]:
                frame = _run(base, train_examples, test_examples, run_config, out_dir, settings)
                frame["references"] = [list(refs) for refs in frame["references"]]
                return frame.to_dict(orient="list")

            if cache is None:
                frame = pd.DataFrame(compute())
            else:
                key = {"kind": "fewshot", "fingerprint": base.fingerprint, "task": task.name, "shots": n,
                       "seed": seed, "train": hash_examples(train_examples), "test": hash_examples(test_examples),
                       "format": fmt.model_dump(mode="json"), "config": run_config.model_dump(mode="json"),
                       "settings": settings.model_dump(mode="json")}
                frame = pd.DataFrame(cache.get_or_compute(key, compute))
            frame["references"] = [tuple(refs) for refs in frame["references"]]
            for run_seed in (seeds if n == 0 else [seed]):
                parts.append(frame.assign(shots=n, seed=run_seed, context=fmt.kind))
    return pd.concat(parts, ignore_index=True)
