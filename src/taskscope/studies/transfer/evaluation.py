"""The transfer evaluation stages: seen-task loss, in-context learning, few-shot LoRA, checkpoint trajectories.

Every job evaluates one model (or checkpoint) on every task it covers, through one `taskscope.evaluate.EvalCache`
under ``run_dir/eval_cache``, so a changed few-shot grid re-evaluates only the (task, shots, seed) runs it has not
seen before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from taskscope.common.files import atomic_write_text
from taskscope.pipeline.config import load_kwargs
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import examples, read_tasks
from taskscope.studies.common.training import checkpoint_specs, model_spec
from taskscope.studies.transfer.config import TransferConfig
from taskscope.studies.transfer.tasks import unseen_task

EVAL_CACHE = "eval_cache"


def _settings(evaluation: dict, **update: Any):
    from taskscope.evaluate import EvalSettings

    return EvalSettings.model_validate({**evaluation["settings"], **update})


def seen_eval_job(spec: str, load: dict, evaluation: dict, seen: dict[str, dict], cache_dir: str, out_dir: Path) -> None:
    """Per-instance target loss of one model on every seen task's train (first n) / validation / test split."""
    from taskscope.evaluate import EvalCache, evaluate_examples
    from taskscope.models import load_model

    loaded = load_model(spec, **load)
    settings, cache = _settings(evaluation, generate=False), EvalCache(cache_dir)
    parts = []
    for info in seen.values():
        for split in ("train", "validation", "test"):
            records = info[split][: evaluation["seen_train_instances"]] if split == "train" else info[split]
            if records:
                frame = evaluate_examples(loaded, examples(records), settings, cache=cache)
                parts.append(frame[["task", "instance_id", "loss"]].assign(split=split))
    atomic_write_text(Path(out_dir) / "seen_loss.csv", pd.concat(parts, ignore_index=True).to_csv(index=False))


def icl_job(spec: str, load: dict, tasks: dict, icl: dict, evaluation: dict, unseen: list[str], cache_dir: str,
            out_dir: Path) -> None:
    """In-context scores of one model on every unseen task, with and without the definition."""
    from taskscope.evaluate import EvalCache, evaluate_icl
    from taskscope.models import load_model
    from taskscope.tasks.formats import named_format

    loaded = load_model(spec, **load)
    fmt = named_format(icl["format"])
    settings, cache = _settings(evaluation), EvalCache(cache_dir)
    parts = []
    for name in unseen:
        task, test, pool = unseen_task(tasks, name)
        for with_definition in icl["with_definition"]:
            parts.append(evaluate_icl(loaded, task, test, k=icl["k"], with_definition=with_definition,
                                      pool=pool if icl["exemplars"] == "fewshot_pool" else None,
                                      fmt=fmt, seed=icl["seed"], settings=settings, cache=cache))
    _write_scores(pd.concat(parts, ignore_index=True), Path(out_dir) / "icl.csv")


def fewshot_job(spec: str, load: dict, tasks: dict, grid: dict, context: str, evaluation: dict, unseen: list[str],
                cache_dir: str, out_dir: Path) -> None:
    """Few-shot LoRA transfer of one model to every unseen task under one task context (all shots x seeds)."""
    from taskscope.evaluate import EvalCache, evaluate_fewshot
    from taskscope.models import load_model
    from taskscope.tasks.formats import named_format
    from taskscope.train.config import TrainConfig

    loaded = load_model(spec, **load)
    settings, cache = _settings(evaluation), EvalCache(cache_dir)
    parts = []
    for name in unseen:
        task, test, pool = unseen_task(tasks, name)
        parts.append(evaluate_fewshot(loaded, task, pool, test, out_root=Path(out_dir) / "lora", shots=grid["shots"],
                                      seeds=grid["seeds"], fmt=named_format(context, n_exemplars=grid["k"]),
                                      train_config=TrainConfig.model_validate(grid["train"]), settings=settings,
                                      cache=cache).assign(context=context))
    _write_scores(pd.concat(parts, ignore_index=True), Path(out_dir) / "fewshot.csv")


def _write_scores(frame: pd.DataFrame, path: Path) -> None:
    """Write evaluation rows with a fixed column order (cached results come back with their keys sorted)."""
    from taskscope.evaluate.examples import COLUMNS

    order = [c for c in COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in COLUMNS]
    frame = frame[order].assign(references=[json.dumps(list(refs)) for refs in frame["references"]])
    atomic_write_text(path, frame.to_csv(index=False))


def _concat_items(item_dirs: dict[str, Path], filename: str, columns: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Concatenate ``filename`` of every item, adding the item's ``columns`` (e.g. its model name)."""
    parts = [pd.read_csv(folder / filename).assign(**columns[name]) for name, folder in item_dirs.items()]
    return pd.concat(parts, ignore_index=True)


def _eval_common(ctx: StageContext) -> tuple[TransferConfig, dict, str]:
    config: TransferConfig = ctx.config
    return config, read_tasks(ctx.inputs["tasks"]), str(ctx.run_dir / EVAL_CACHE)


def run_seen_eval(ctx: StageContext) -> None:
    config, tasks, cache_dir = _eval_common(ctx)
    evaluation = config.evaluation.model_dump(mode="json")
    jobs = {name: (model_spec(config, ctx.inputs["instruction_tune"], name), load_kwargs(config), evaluation,
                   tasks["seen"], cache_dir) for name in config.model_names()}
    items = ctx.map_items(seen_eval_job, jobs, "seen-task loss")
    frame = _concat_items(items, "seen_loss.csv", {name: {"model": name} for name in items})
    frame["task_size"] = frame["task"].map({t: info["size"] for t, info in tasks["seen"].items()})
    atomic_write_text(ctx.out_dir / "seen_loss.csv", frame.to_csv(index=False))


def run_icl(ctx: StageContext) -> None:
    config, tasks, cache_dir = _eval_common(ctx)
    jobs = {name: (model_spec(config, ctx.inputs["instruction_tune"], name), load_kwargs(config),
                   config.tasks.model_dump(mode="json"), config.icl.model_dump(mode="json"),
                   config.evaluation.model_dump(mode="json"), list(tasks["unseen"]), cache_dir)
            for name in config.model_names()}
    items = ctx.map_items(icl_job, jobs, "in-context evaluation")
    frame = _concat_items(items, "icl.csv", {name: {"model": name} for name in items})
    atomic_write_text(ctx.out_dir / "icl.csv", frame.to_csv(index=False))


def run_fewshot(ctx: StageContext) -> None:
    config, tasks, cache_dir = _eval_common(ctx)
    grid = config.fewshot.model_dump(mode="json")
    jobs, columns = {}, {}
    for name in config.model_names():
        spec = model_spec(config, ctx.inputs["instruction_tune"], name)
        for context in config.fewshot.contexts:
            item = f"{name}-{context}"
            jobs[item] = (spec, load_kwargs(config), config.tasks.model_dump(mode="json"), grid, context,
                          config.evaluation.model_dump(mode="json"), list(tasks["unseen"]), cache_dir)
            columns[item] = {"model": name}
    items = ctx.map_items(fewshot_job, jobs, "few-shot transfer")
    atomic_write_text(ctx.out_dir / "fewshot.csv", _concat_items(items, "fewshot.csv", columns).to_csv(index=False))


def trajectory_job(spec: str, load: dict, tasks: dict, icl: dict, grid: dict, evaluation: dict, unseen: list[str],
                   cache_dir: str, out_dir: Path) -> None:
    """ICL and few-shot (one shot count, first seed and context) scores of one checkpoint on every unseen task."""
    icl_job(spec, load, tasks, {**icl, "with_definition": icl["with_definition"][:1]}, evaluation, unseen,
            cache_dir, out_dir)
    fewshot_job(spec, load, tasks, grid, grid["contexts"][0], evaluation, unseen, cache_dir, out_dir)


def run_trajectory(ctx: StageContext) -> None:
    config, tasks, cache_dir = _eval_common(ctx)
    trajectory = config.analyses.trajectory
    grid = {**config.fewshot.model_dump(mode="json"), "shots": [trajectory.shots], "seeds": config.fewshot.seeds[:1]}
    specs = checkpoint_specs(ctx.inputs["instruction_tune"] / "items" / trajectory.model)
    jobs = {f"step-{step:06d}": (spec, load_kwargs(config), config.tasks.model_dump(mode="json"),
                                 config.icl.model_dump(mode="json"), grid, config.evaluation.model_dump(mode="json"),
                                 list(tasks["unseen"]), cache_dir) for step, spec in sorted(specs.items())}
    items = ctx.map_items(trajectory_job, jobs, "checkpoint trajectory")
    rows = []
    for item, folder in items.items():
        icl = pd.read_csv(folder / "icl.csv").groupby("task")[["loss", "rouge_l"]].mean()
        fewshot = pd.read_csv(folder / "fewshot.csv").groupby("task")[["loss", "rouge_l"]].mean()
        for task in icl.index:
            rows.append({"task": task, "step": int(item.split("-")[1]), "icl_loss": icl.loc[task, "loss"],
                         "icl_rouge_l": icl.loc[task, "rouge_l"], "fewshot_loss": fewshot.loc[task, "loss"],
                         "fewshot_rouge_l": fewshot.loc[task, "rouge_l"]})
    atomic_write_text(ctx.out_dir / "trajectory.csv", pd.DataFrame(rows).to_csv(index=False))


