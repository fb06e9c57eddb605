"""The transfer study as cached stages: tasks -> instruction tuning -> evaluation -> analysis -> report.

================  ==========================================  ============================================
stage             reads (config slice + upstream)             writes
================  ==========================================  ============================================
tasks             ``tasks``, ``context``                      ``tasks.json``: seen tasks' formatted train /
                                                              validation / test examples and sizes; unseen
                                                              tasks' test and few-shot pool instance ids
instruction_tune  ``model``, every multitask model's train    ``items/{model}/model.json`` (+ checkpoints)
                  config, ``unsupervised_text`` + tasks
seen_eval         ``evaluation`` + tasks, instruction_tune    ``seen_loss.csv``: per-instance loss on the
                                                              seen train / validation / test splits
icl               ``icl``, ``evaluation`` + ...               ``icl.csv``: k-shot in-context scores
fewshot           ``fewshot``, ``evaluation`` + ...           ``fewshot.csv``: LoRA few-shot scores
trajectory        ``analyses.trajectory``, few-shot settings  ``trajectory.csv`` (only when configured)
analysis          ``analyses`` + the evaluations              the CSV tables of :data:`TRANSFER_TABLES` and
                                                              ``findings.json`` (T1-T6 with verdicts)
report            the whole config + analysis                 ``figures/``, ``report.html``
================  ==========================================  ============================================

Fan-out stages run one job per item (model, model x context, checkpoint) through the executor; a job is
a top-level function of plain arguments.  Every evaluation goes through one `taskscope.evaluate.EvalCache`
under ``run_dir/eval_cache``, so a changed few-shot grid reruns the ``fewshot`` stage but retrains and
re-evaluates only the (task, shots, seed) runs it has not seen before.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from taskscope.common.files import atomic_write_json, atomic_write_text
from taskscope.pipeline.cache import data_fingerprint
from taskscope.pipeline.config import load_kwargs, model_options_slice
from taskscope.pipeline.run import Run, execute_stages
from taskscope.pipeline.stages import Stage, StageContext
from taskscope.pipeline.study import write_dropped
from taskscope.pipeline.transfer_config import (
    TransferStudyConfig,
    dump_transfer_config,
    load_transfer_config,
)

MODEL_FILE = "model.json"
FINDINGS_FILE = "findings.json"
EVAL_CACHE = "eval_cache"
TRANSFER_TABLES = ("fewshot", "icl", "seen_loss", "per_task", "transfer_curves", "correlations",
                   "change_correlation", "model_summary", "loss_by_task_size", "sampling_unseen", "data_limit",
                   "unsupervised", "trajectory", "trajectory_correlation", "sanity")


# ---------------------------------------------------------------- tasks
@functools.lru_cache(maxsize=4)
def _loaded_suite(tasks_json: str):
    """The task source of ``tasks_json`` as loaded (with what its loader dropped; cached per process)."""
    from taskscope.tasks import load_suite

    sel = json.loads(tasks_json)
    return load_suite(sel["source"], **sel["options"])


@functools.lru_cache(maxsize=4)
def _split_suite(tasks_json: str):
    """Load the source, keep ``tasks`` / ``clusters``, split seen / unseen, cap the counts (cached per process)."""
    from taskscope.tasks.splits import split_suite

    sel = json.loads(tasks_json)
    suite = _loaded_suite(tasks_json)
    if sel["tasks"] is not None:
        suite = suite.select(sel["tasks"])
    if sel["clusters"] is not None:
        suite = suite.by_cluster(sel["clusters"])
    split = split_suite(suite, unseen_clusters=sel["unseen_clusters"], unseen_tasks=sel["unseen_tasks"],
                        split_dir=sel["split_dir"])
    seen, unseen = list(split.seen), list(split.unseen)
    seen = seen[: sel["max_seen_tasks"]] if sel["max_seen_tasks"] else seen
    unseen = unseen[: sel["max_unseen_tasks"]] if sel["max_unseen_tasks"] else unseen
    for where, chosen in (("seen", seen), ("unseen", unseen)):
        if not chosen:
            raise ValueError(f"tasks: no {where} tasks in the selection from {sel['source']!r}")
    return seen, unseen


def _tasks_key(tasks: dict[str, Any]) -> str:
    return json.dumps(tasks, sort_keys=True, default=str)


def unseen_task(tasks: dict[str, Any], name: str):
    """``(task, test instances, few-shot pool)`` of unseen task ``name`` under the ``tasks`` config slice."""
    from taskscope.tasks.splits import split_task

    task = next(t for t in _split_suite(_tasks_key(tasks))[1] if t.name == name)
    split = split_task(task, test=tasks["unseen_test"], validation=0, fewshot_pool=tasks["fewshot_pool"], train=0,
                       seed=tasks["seed"], sni_test_first=tasks["sni_test_first"])
    return task, split.test, split.fewshot_pool


def run_tasks(ctx: StageContext) -> None:
    """Split every seen task (train capped) and format it with ``context`` under `seen_prompt_budget` tokens of
    the model's tokenizer (exemplars dropped first, a warning with counts when anything is cut - the same
    `format_task` the evaluations use); record every unseen task's split."""
    from taskscope.evaluate.examples import token_counter
    from taskscope.models.loading import load_spec_tokenizer
    from taskscope.tasks.formats import format_task
    from taskscope.tasks.splits import split_task

    config: TransferStudyConfig = ctx.config
    tasks = config.tasks.model_dump(mode="json")
    fmt = config.context_format().model_copy(update={"max_prompt_tokens": config.seen_prompt_budget()})
    count = token_counter(load_spec_tokenizer(config.model))
    seen_tasks, unseen_tasks = _split_suite(_tasks_key(tasks))
    write_dropped(_loaded_suite(_tasks_key(tasks)), ctx.out_dir)
    seen = {}
    for task in seen_tasks:
        split = split_task(task, test=tasks["test"], validation=tasks["validation"], train=None,
                           cap=config.tasks.caps.get(task.name, config.tasks.cap), seed=tasks["seed"])
        seen[task.name] = {"cluster": task.cluster, "size": len(split.train), **{
            part: [asdict(e) for e in format_task(task, getattr(split, part), fmt, seed=tasks["seed"],
                                                           count_tokens=count)]
            for part in ("train", "validation", "test")}}
    unseen = {}
    for task in unseen_tasks:
        _, test, pool = unseen_task(tasks, task.name)
        unseen[task.name] = {"cluster": task.cluster, "test_ids": [i.id for i in test],
                             "pool_ids": [i.id for i in pool]}
    atomic_write_json(ctx.out_dir / "tasks.json", {"seen": seen, "unseen": unseen})


def read_tasks(folder: Path) -> dict[str, dict[str, Any]]:
    return json.loads((Path(folder) / "tasks.json").read_text())


def _examples(records: Sequence[dict]):
    from taskscope.tasks.formats import FormattedExample

    return [FormattedExample(**{**r, "targets": tuple(r["targets"])}) for r in records]


# ---------------------------------------------------------------- instruction tuning
def _weights_of(checkpoint: Path, base_spec: str, load: dict) -> tuple[Path, str]:
    """The adapter (LoRA) or model folder of a checkpoint; a full model gets the base tokenizer saved beside it."""
    from taskscope.models import load_model

    if (checkpoint / "adapter" / "adapter_config.json").is_file():
        return checkpoint / "adapter", "lora"
    if not (checkpoint / "model" / "tokenizer_config.json").is_file():
        load_model(base_spec, **load).tokenizer.save_pretrained(checkpoint / "model")
    return checkpoint / "model", "full"


def instruction_tune_job(base_spec: str, load: dict, train_config: dict, data: dict[str, list[dict]],
                         text_source: str | list[str] | None, tracking, out_dir: Path) -> None:
    """Instruction-tune the base on the seen tasks (`train_multitask`); ``model.json`` lists final + checkpoints."""
    from taskscope.models import load_model
    from taskscope.train.checkpoint import CHECKPOINTS, STATE_FILE
    from taskscope.train.config import TrainConfig
    from taskscope.train.modes import train_multitask

    out_dir = Path(out_dir)
    config = TrainConfig.model_validate(train_config)
    result = train_multitask(load_model(base_spec, **load),
                             {task: _examples(records) for task, records in data.items()}, config,
                             out_dir / "train", text_source=text_source if config.unsupervised_every else None,
                             tracking=tracking)
    final, kind = _weights_of(Path(result.final_checkpoint), base_spec, load)
    checkpoints = {}
    for step_dir in sorted((out_dir / "train" / CHECKPOINTS).glob("step-*")):
        if (step_dir / STATE_FILE).is_file():
            weights, _ = _weights_of(step_dir, base_spec, load)
            checkpoints[int(step_dir.name.split("-")[1])] = str(weights.relative_to(out_dir))
    checkpoints[result.steps] = str(final.relative_to(out_dir))
    atomic_write_json(out_dir / MODEL_FILE, {"base": base_spec, "kind": kind, "steps": result.steps,
                                             "weights": str(final.relative_to(out_dir)), "checkpoints": checkpoints})


def _spec_of(base: str, kind: str, weights: Path) -> str:
    return f"{base}+lora:{weights.resolve()}" if kind == "lora" else str(weights.resolve())


def model_spec(config: TransferStudyConfig, tune_dir: Path, name: str) -> str:
    """The ``load_model`` spec of model ``name``: the base, or its instruction-tuned weights."""
    if config.model_named(name).kind == "pretrained":
        return config.model
    item = Path(tune_dir) / "items" / name
    info = json.loads((item / MODEL_FILE).read_text())
    return _spec_of(info["base"], info["kind"], item / info["weights"])


def checkpoint_specs(config: TransferStudyConfig, tune_dir: Path, name: str) -> dict[int, str]:
    """Step -> ``load_model`` spec for step 0 (the base) and every saved checkpoint of model ``name``."""
    item = Path(tune_dir) / "items" / name
    info = json.loads((item / MODEL_FILE).read_text())
    specs = {0: config.model}
    specs.update({int(step): _spec_of(info["base"], info["kind"], item / weights)
                  for step, weights in info["checkpoints"].items()})
    return specs


def run_instruction_tune(ctx: StageContext) -> None:
    config: TransferStudyConfig = ctx.config
    seen = read_tasks(ctx.inputs["tasks"])["seen"]
    data = {task: info["train"] for task, info in seen.items()}
    text_source = (str(config.unsupervised_text) if config.unsupervised_text is not None
                   else [r["prompt"] for records in data.values() for r in records])
    jobs = {m.name: (config.model, load_kwargs(config), config.train_config(m.name), data, text_source,
                     ctx.tracking(f"instruction_tune/{m.name}")) for m in config.models if m.kind == "multitask"}
    ctx.map_items(instruction_tune_job, jobs, "instruction-tune models", atomic=False)


# ---------------------------------------------------------------- evaluation
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
                frame = evaluate_examples(loaded, _examples(records), settings, cache=cache)
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


def _eval_common(ctx: StageContext) -> tuple[TransferStudyConfig, dict, str]:
    config: TransferStudyConfig = ctx.config
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
    specs = checkpoint_specs(config, ctx.inputs["instruction_tune"], trajectory.model)
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


# ---------------------------------------------------------------- analyses
def _per_task(config: TransferStudyConfig, fewshot: pd.DataFrame, icl: pd.DataFrame,
              clusters: dict[str, str]) -> pd.DataFrame:
    """One row per (model, shots, task): few-shot loss / ROUGE-L (first context, mean over seeds and instances)
    beside the ICL loss / ROUGE-L (first ``with_definition`` setting)."""
    shots = (fewshot[fewshot["context"] == config.fewshot.contexts[0]]
             .groupby(["model", "shots", "task"])[["loss", "rouge_l"]].mean()
             .rename(columns={"loss": "fewshot_loss", "rouge_l": "fewshot_rouge_l"}).reset_index())
    context = (icl[icl["with_definition"] == config.icl.with_definition[0]]
               .groupby(["model", "task"])[["loss", "rouge_l"]].mean()
               .rename(columns={"loss": "icl_loss", "rouge_l": "icl_rouge_l"}).reset_index())
    per_task = shots.merge(context, on=["model", "task"], how="inner")
    return per_task.assign(cluster=per_task["task"].map(clusters))


def _model_summary(fewshot: pd.DataFrame, icl: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
    """Long table ``model``, ``measure``, ``value``: task-averaged seen losses, ICL and few-shot scores."""
    rows = []
    for (model, split), part in seen.groupby(["model", "split"]):
        rows.append({"model": model, "measure": f"seen_{split}_loss", "value": part.groupby("task")["loss"].mean().mean()})
    for (model, with_definition), part in icl.groupby(["model", "with_definition"]):
        tag = "definition" if with_definition else "no definition"
        for metric in ("loss", "rouge_l"):
            rows.append({"model": model, "measure": f"icl_{metric} ({tag})",
                         "value": part.groupby("task")[metric].mean().mean()})
    for (model, context, shots), part in fewshot.groupby(["model", "context", "shots"]):
        for metric in ("loss", "rouge_l"):
            rows.append({"model": model, "measure": f"fewshot_{metric}@{shots} ({context})",
                         "value": part.groupby("task")[metric].mean().mean()})
    return pd.DataFrame(rows)


def analyse(config: TransferStudyConfig, frames: dict[str, pd.DataFrame], clusters: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The analysis tables, in order: per-task scores, model summary, then every analysis ``config`` enables.

    * ``transfer_curves``: per model (and context, when several) and shot count, mean / std over seeds;
    * ``correlations``: Spearman rho, p between few-shot and ICL loss (and ROUGE-L) across unseen tasks, per model
      and shot count; ``change_correlation``: between their per-task changes from one model to another;
    * ``loss_by_task_size`` / ``sampling_unseen``: seen-task train / test loss binned by task size and unseen ICL
      scores, per sampling scheme (model);
    * ``data_limit``: the model summary of the models of the sweep, with their per-task data limit (column ``cap``);
    * ``unsupervised``: every measure without and with unsupervised mixing, and the difference;
    * ``trajectory_correlation``: correlations of the changes before and after the chosen checkpoint step.
    """
    from taskscope.analysis.correlation import loss_correlation, spearman, task_changes
    from taskscope.analysis.transfer import (
        loss_by_task_size,
        trajectory_correlation,
        transfer_curves,
    )

    fewshot, icl, seen = frames["fewshot"], frames["icl"], frames["seen_loss"]
    analyses = config.analyses
    per_task = _per_task(config, fewshot, icl, clusters)
    summary = _model_summary(fewshot, icl, seen)
    out = {"per_task": per_task, "model_summary": summary}
    if analyses.transfer_curves:
        several = len(config.fewshot.contexts) > 1
        series = fewshot["model"] + (" (" + fewshot["context"] + ")" if several else "")
        out["transfer_curves"] = transfer_curves(fewshot.assign(series=series), model_column="series")
    if analyses.correlations:
        out["correlations"] = pd.concat(
            [loss_correlation(per_task, "fewshot_loss", "icl_loss", by=["model", "shots"]),
             loss_correlation(per_task, "fewshot_rouge_l", "icl_rouge_l", by=["model", "shots"])], ignore_index=True)
        pair = config.change_pair()
        if pair is not None:
            rows = []
            for shots, part in per_task.groupby("shots"):
                changes = task_changes(part, ["fewshot_loss", "icl_loss"], before=pair[0], after=pair[1])
                result = spearman(changes["fewshot_loss"], changes["icl_loss"])
                rows.append({"before": pair[0], "after": pair[1], "shots": shots, "x": "fewshot_loss",
                             "y": "icl_loss", "rho": result.rho, "p_value": result.p_value, "n_tasks": result.n})
            out["change_correlation"] = pd.DataFrame(rows)
    if analyses.sampling is not None:
        chosen = seen[seen["model"].isin(analyses.sampling) & seen["split"].isin(["train", "test"])]
        out["loss_by_task_size"] = loss_by_task_size(chosen.rename(columns={"model": "scheme"}),
                                                     bins=analyses.task_size_bins, group="scheme")
        out["sampling_unseen"] = (icl[icl["model"].isin(analyses.sampling)]
                                  .groupby(["model", "with_definition", "task"])[["loss", "rouge_l"]].mean()
                                  .groupby(["model", "with_definition"]).mean().reset_index()
                                  .rename(columns={"loss": "icl_loss", "rouge_l": "icl_rouge_l"}))
    if analyses.data_limit is not None:
        caps = {name: config.train_config(name)["data_limit"] for name in analyses.data_limit}
        part = summary[summary["model"].isin(caps)]
        out["data_limit"] = part.assign(cap=part["model"].map(caps)).sort_values(["measure", "cap"])
    if analyses.unsupervised is not None:
        without, with_mixing = analyses.unsupervised
        wide = summary.pivot(index="measure", columns="model", values="value")
        out["unsupervised"] = pd.DataFrame({"measure": wide.index, "without": wide[without].to_numpy(),
                                            "with": wide[with_mixing].to_numpy(),
                                            "difference": (wide[with_mixing] - wide[without]).to_numpy()})
    if analyses.trajectory is not None:
        step = analyses.trajectory.step
        out["trajectory_correlation"] = pd.concat(
            [trajectory_correlation(frames["trajectory"], step, "fewshot_loss", "icl_loss"),
             trajectory_correlation(frames["trajectory"], step, "fewshot_rouge_l", "icl_rouge_l")], ignore_index=True)
    return out


# ---------------------------------------------------------------- analysis and report
def run_analysis(ctx: StageContext) -> None:
    """The evaluation tables and every enabled analysis (:func:`analyse`) as CSV files."""
    config: TransferStudyConfig = ctx.config
    frames = {"fewshot": pd.read_csv(ctx.inputs["fewshot"] / "fewshot.csv"),
              "icl": pd.read_csv(ctx.inputs["icl"] / "icl.csv"),
              "seen_loss": pd.read_csv(ctx.inputs["seen_eval"] / "seen_loss.csv")}
    if "trajectory" in ctx.inputs:
        frames["trajectory"] = pd.read_csv(ctx.inputs["trajectory"] / "trajectory.csv")
    clusters = {t: info["cluster"] for t, info in read_tasks(ctx.inputs["tasks"])["unseen"].items()}
    tables = {**frames, **analyse(config, frames, clusters)}
    from taskscope.analysis.transfer_findings import sanity_checks

    tables["sanity"] = sanity_checks(frames["fewshot"])  # the rule of docs/transfer.md, per model and context
    for name, table in tables.items():
        atomic_write_text(ctx.out_dir / f"{name}.csv", table.to_csv(index=False))
    write_study_findings(config, tables, ctx.out_dir / FINDINGS_FILE)


def findings_design(config: TransferStudyConfig):
    """Which models each transfer claim compares, from the config (`analysis.transfer_findings.FindingsDesign`)."""
    from taskscope.analysis.transfer_findings import FindingsDesign

    analyses = config.analyses
    pair = config.change_pair()
    kinds = {m.name: m.kind for m in config.models}
    return FindingsDesign(
        pair=pair if pair and kinds[pair[0]] == "pretrained" and kinds[pair[1]] == "multitask" else None,
        data_limits={n: config.train_config(n)["data_limit"] for n in analyses.data_limit or ()},
        sampling=tuple(analyses.sampling or ()), unsupervised=analyses.unsupervised,
        trajectory_step=analyses.trajectory.step if analyses.trajectory else None)


def write_study_findings(config: TransferStudyConfig, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """``findings.json``: T1-T6 with verdicts (`analysis.transfer_findings`)."""
    from taskscope.analysis.findings import write_findings
    from taskscope.analysis.transfer_findings import transfer_findings

    write_findings(transfer_findings(tables, findings_design(config)), path)


def run_report(ctx: StageContext) -> None:
    from taskscope.report.transfer_report import write_transfer_report

    config: TransferStudyConfig = ctx.config
    tables = {name: pd.read_csv(ctx.inputs["analysis"] / f"{name}.csv") for name in TRANSFER_TABLES
              if (ctx.inputs["analysis"] / f"{name}.csv").is_file()}
    from taskscope.analysis.findings import read_findings

    findings_path = ctx.inputs["analysis"] / FINDINGS_FILE
    findings = read_findings(findings_path) if findings_path.is_file() else []
    write_transfer_report(tables, ctx.out_dir, title=config.report.title or f"taskscope transfer study: {config.name}",
                          findings=findings,
                          config_text=dump_transfer_config(config), figure_formats=config.report.figure_formats,
                          trajectory_step=config.analyses.trajectory.step if config.analyses.trajectory else None)


def transfer_stages(config: TransferStudyConfig) -> list[Stage]:
    """The stages of ``config``'s transfer study in run order (``trajectory`` only when configured)."""
    dump = lambda model: model.model_dump(mode="json")
    evaluation = lambda c: {"model": c.model, **model_options_slice(c), "evaluation": dump(c.evaluation)}
    stages = [
        Stage("tasks", run_tasks, lambda c: {"tasks": dump(c.tasks), "context": c.context, "model": c.model,
                                             "prompt_budget": c.seen_prompt_budget(),
                                             "data": [data_fingerprint(c.tasks.source), data_fingerprint(c.tasks.split_dir)]},
              version="3"),
        Stage("instruction_tune", run_instruction_tune,
              lambda c: {"model": c.model, **model_options_slice(c), "unsupervised_text": str(c.unsupervised_text),
                         "train": {m.name: c.train_config(m.name) for m in c.models if m.kind == "multitask"},
                         "data": data_fingerprint(c.unsupervised_text)},
              needs=("tasks",), version="1"),
        Stage("seen_eval", run_seen_eval, lambda c: {**evaluation(c), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="1"),
        Stage("icl", run_icl, lambda c: {**evaluation(c), "icl": dump(c.icl), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="1"),
        Stage("fewshot", run_fewshot, lambda c: {**evaluation(c), "fewshot": dump(c.fewshot), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="1"),
    ]
    analysis_needs = ("tasks", "seen_eval", "icl", "fewshot")
    if config.analyses.trajectory is not None:
        stages.append(Stage("trajectory", run_trajectory,
                            lambda c: {**evaluation(c), "trajectory": dump(c.analyses.trajectory), "icl": dump(c.icl),
                                       "contexts": c.fewshot.contexts[:1], "seeds": c.fewshot.seeds[:1],
                                       "train": c.fewshot.train},
                            needs=("tasks", "instruction_tune"), version="1"))
        analysis_needs += ("trajectory",)
    stages += [
        Stage("analysis", run_analysis, lambda c: {"analyses": dump(c.analyses), "models": dump_models(c)},
              needs=analysis_needs, publish=(*(f"{name}.csv" for name in expected_tables(config)), FINDINGS_FILE),
              version="3"),
        Stage("report", run_report, lambda c: c.model_dump(mode="json"), needs=("analysis",),
              publish=("report.html", "figures"), version="2"),
    ]
    return stages


def expected_tables(config: TransferStudyConfig) -> list[str]:
    """The tables a run of ``config`` writes (the evaluations, per-task scores, summary and enabled analyses)."""
    analyses = config.analyses
    enabled = {"transfer_curves": analyses.transfer_curves, "correlations": analyses.correlations,
               "change_correlation": analyses.correlations and config.change_pair() is not None,
               "loss_by_task_size": analyses.sampling is not None, "sampling_unseen": analyses.sampling is not None,
               "data_limit": analyses.data_limit is not None, "unsupervised": analyses.unsupervised is not None,
               "trajectory": analyses.trajectory is not None, "trajectory_correlation": analyses.trajectory is not None}
    return [name for name in TRANSFER_TABLES if enabled.get(name, True)]


def dump_models(config: TransferStudyConfig) -> list[dict[str, Any]]:
    return [{**m.model_dump(mode="json"), "train": config.train_config(m.name) if m.kind == "multitask" else {}}
            for m in config.models]


# ---------------------------------------------------------------- run
class TransferRun(Run):
    """A transfer-study run folder: ``tables`` (pandas, :data:`TRANSFER_TABLES`), ``config``, ``manifest``,
    ``models`` (the instruction-tuned models), ``figures``; see :class:`~taskscope.pipeline.run.Run`."""

    TABLE_NAMES = TRANSFER_TABLES

    @property
    def layer_map(self):  # type: ignore[override]
        raise AttributeError("a transfer study has no layer map")


def run_transfer_study(config: TransferStudyConfig | str | Path, run_dir: str | Path | None = None, *,
                       executor: str = "local", force: bool | Sequence[str] = False,
                       executor_options: dict | None = None, overrides: Sequence[str] = ()) -> TransferRun:
    """Run (or resume) a transfer study and return its :class:`TransferRun`.

    Order: resolve the config (a path is read with `load_transfer_config`); the run folder is ``run_dir`` or
    ``output_dir / name``; write ``study.yaml`` and attach ``logs/run.log``; run :func:`transfer_stages`
    through the executor (finished stages are reused); return the run.
    """
    study = config if isinstance(config, TransferStudyConfig) else load_transfer_config(config)
    folder = Path(run_dir) if run_dir is not None else study.output_dir / study.name
    execute_stages(transfer_stages(study), study, dump_transfer_config(study), folder,
                   executor=executor, force=force, executor_options=executor_options, overrides=overrides)
    return TransferRun(folder)
