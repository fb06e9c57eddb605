"""The MOSSA training stages: one control per task and seed, their validation scores, the experimental models.

* ``controls``: control C_t of every task (``train_control`` on the task's training examples; replicate ``k`` with
  the training seed moved by ``k``: items ``{task}`` and ``{task}@s{k}``);
* ``control_scores``: every control and the base model on the task's validation share (``controls.csv``);
* ``experimental``: every ``multitask`` model instruction-tuned on the tasks it does not hold out.
"""

from __future__ import annotations

import json
from pathlib import Path

from taskscope.common.files import atomic_write_json, atomic_write_text
from taskscope.pipeline.config import load_kwargs, section_slice
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import examples, read_tasks
from taskscope.studies.common.training import (
    CHECKPOINT_FILE,
    instruction_tune_job,
    record_checkpoint,
    trained_spec,
)
from taskscope.studies.mossa.config import MossaConfig
from taskscope.studies.mossa.tasks import validation_records


def control_item(task: str, seed: int) -> str:
    """Item name of the control of ``task`` trained with seed offset ``seed``: ``task``, ``task@s1``, ..."""
    return task if seed == 0 else f"{task}@s{seed}"


def seeded_training(train_config: dict, seed: int) -> dict:
    """The control training config of replicate ``seed``: the training seed moved by ``seed`` (0: unchanged)."""
    return dict(train_config) if seed == 0 else {**train_config, "seed": int(train_config.get("seed", 0)) + seed}


def control_job(base_spec: str, load: dict, train_config: dict, task: str, records: list[dict],
                validation: list[dict], tracking, out_dir: Path) -> None:
    """Train the control model C_t of one task (``train_control``).  Validation for stopping: with
    ``validation_share > 0`` that share of the training examples (so the task's validation split, which
    ``controls.csv`` scores, plays no part in training), else ``validation``."""
    from taskscope.models import load_model
    from taskscope.train.config import TrainConfig
    from taskscope.train.modes import train_control

    settings = TrainConfig.model_validate(train_config)
    held_out = {task: examples(validation)} if validation and not settings.validation_share else None
    results = train_control(lambda: load_model(base_spec, **load), {task: examples(records)},
                            settings, Path(out_dir) / "train", validation=held_out, tracking=tracking)
    record_checkpoint(base_spec, load, results[task], out_dir)


def run_controls(ctx: StageContext) -> None:
    """One control per task and seed: items ``{task}`` (seed 0) and ``{task}@s{k}`` (replicates)."""
    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    validation = validation_records(config)
    train = section_slice(config.control_training)
    jobs = {control_item(name, seed): (config.model, load_kwargs(config), seeded_training(train, seed),
                                       name, info["train"], validation.get(name, []),
                                       ctx.tracking(f"controls/{control_item(name, seed)}"))
            for seed in range(config.control_seeds) for name, info in tasks.items()}
    ctx.map_items(control_job, jobs, "train control models", atomic=False)


def score_job(model_spec: str, load: dict, settings: dict, records: dict[str, list[dict]], out_dir: Path) -> None:
    """Per task: per-example target loss (and ROUGE-L / exact match with generation) -> ``scores.json``."""
    from taskscope.evaluate import EvalSettings, evaluate_examples
    from taskscope.models import load_model

    loaded = load_model(model_spec, **load)
    out = {}
    for task, task_records in records.items():
        frame = evaluate_examples(loaded, examples(task_records), EvalSettings.model_validate(settings))
        out[task] = {column: [float(v) for v in frame[column]] for column in SCORE_COLUMNS if column in frame}
    atomic_write_json(Path(out_dir) / "scores.json", out)


SCORE_COLUMNS = ("loss", "rouge_l", "exact_match")


def _eval_settings(config: MossaConfig) -> dict:
    """The evaluation settings of ``control_scores``: ``control_evaluation``, with the controls' training lengths."""
    ev, train = config.control_evaluation, config.control_training
    return {"generate": ev.generate, "loss": True, "max_new_tokens": ev.max_new_tokens, "batch_size": ev.batch_size,
            "max_length": train.max_length, "max_target_length": train.max_target_length}


def run_control_scores(ctx: StageContext) -> None:
    """Score every control and the base model on the validation split of the control's task (``controls.csv``)."""
    from taskscope.analysis.controls import controls_table

    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    validation = {t: records for t, records in validation_records(config).items() if t in tasks and records}
    settings = _eval_settings(config)
    controls_dir = ctx.inputs["controls"] / "items"
    items = {control_item(t, seed): (t, seed) for seed in range(config.control_seeds) for t in validation}
    jobs = {"base": (config.model, load_kwargs(config), settings, validation)}
    jobs.update({f"control-{item}": (trained_spec(controls_dir / item), load_kwargs(config), settings, {t: validation[t]})
                 for item, (t, _) in items.items()})
    done = ctx.map_items(score_job, jobs, "score controls on validation examples")
    scores = {name: json.loads((folder / "scores.json").read_text()) for name, folder in done.items()}
    rows = []
    for item, (task, seed) in items.items():
        info = json.loads((controls_dir / item / CHECKPOINT_FILE).read_text())
        rows.append({"task": task, "cluster": tasks[task]["cluster"], "seed": seed, "item": item,
                     "steps": info.get("steps"), "stop_reason": info.get("stop_reason") or "max_steps",
                     "control": scores[f"control-{item}"][task], "base": scores["base"][task]})
    ev = config.control_evaluation
    table = controls_table(rows, margin=ev.learned_margin, n_bootstrap=ev.n_bootstrap, confidence=ev.confidence)
    atomic_write_text(ctx.out_dir / "controls.csv", table.to_csv(index=False))


def seen_tasks(config: MossaConfig, tasks: dict[str, dict], model_name: str) -> list[str]:
    """Tasks the experimental model trains on: all minus its held-out tasks and clusters."""
    spec = next(m for m in config.models if m.name == model_name)
    return [t for t, info in tasks.items()
            if t not in spec.heldout_tasks and info["cluster"] not in spec.heldout_clusters]


def run_experimental(ctx: StageContext) -> None:
    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    jobs = {}
    for model in config.models:
        if model.kind != "multitask":
            continue
        clusters = {info["cluster"] for info in tasks.values()}
        for field, names, known in (("heldout_tasks", model.heldout_tasks, set(tasks)),
                                    ("heldout_clusters", model.heldout_clusters, clusters)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"models[{model.name!r}].{field}: {unknown} not in the selected tasks' "
                                 f"{'names' if field == 'heldout_tasks' else 'clusters'} {sorted(known)}")
        seen = seen_tasks(config, tasks, model.name)
        if not seen:
            raise ValueError(f"experimental model {model.name!r} holds out every task")
        jobs[model.name] = (config.model, load_kwargs(config), section_slice(config.instruction_tuning),
                            {t: tasks[t]["train"] for t in seen}, None, ctx.tracking(f"experimental/{model.name}"))
    ctx.map_items(instruction_tune_job, jobs, "instruction-tune experimental models", atomic=False)


