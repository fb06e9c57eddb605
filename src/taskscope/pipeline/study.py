"""The MOSSA study as stages: tasks -> controls, experimental -> extract -> similarity -> analysis -> report.

==============  ===========================================  =======================================
stage           reads (config slice + upstream)              writes
==============  ===========================================  =======================================
tasks           ``tasks``, ``prompt_format``                 ``tasks.json`` (formatted train / input
                                                             examples and the cluster of each task),
                                                             ``dropped.json`` (what the loader dropped)
controls        ``model``, ``control_training``,             ``items/{task}/`` one control C_t each,
                ``control_seeds`` + tasks                    ``items/{task}@s{k}/`` its replicates
control_scores  ``control_evaluation`` + tasks, controls      ``controls.csv``: validation loss / metric
                                                             of every control and the base model
experimental    ``model``, ``multitask_training``,           ``items/{model}/`` one instruction-tuned
                ``experimental_models`` + tasks              model each (pre-trained: nothing to train)
extract         ``extraction`` + tasks, controls,            ``items/{control-task | exp-model}/
                experimental                                 states.safetensors`` ``(L+1, n, d)`` per task
similarity      ``similarity``, ``report.baseline_model``    ``mossa.csv``, ``differences.csv`` (paired
                + tasks, extract                             intervals and permutation p per layer)
ceiling         ``similarity``, ``control_seeds`` + tasks,   ``ceiling.csv``: seed-to-seed CKA of the
                extract                                      replicate controls (the noise ceiling)
analysis        ``layer_map``, ``report.baseline_model``     ``layer_map.json``, ``layer_summary.csv``,
                + similarity, ceiling, control_scores        ``cluster_summary.csv``,
                                                             ``ceiling_comparison.csv``, ``findings.json``
report          the whole config + similarity, analysis,    ``figures/``, ``report.html`` (with the
                control_scores, training logs of controls,   training curves and the manifest so far;
                experimental                                 :mod:`taskscope.pipeline.rebuild`)
==============  ===========================================  =======================================

Fan-out stages (controls, control_scores, experimental, extract) run one job per item through the executor; a job
is a top-level function of plain arguments so Ray can ship it.  The heavy packages (models, train,
represent) are imported inside the jobs, so this module imports cheaply.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from taskscope.common.files import atomic_write_json, atomic_write_text
from taskscope.pipeline.cache import data_fingerprint
from taskscope.pipeline.config import StudyConfig, dump_config, load_kwargs, model_options_slice
from taskscope.pipeline.manifest import DROPPED_FILE
from taskscope.pipeline.progress import logger
from taskscope.pipeline.stages import Stage, StageContext

CHECKPOINT_FILE = "model.json"
STATES_FILE = "states.safetensors"
TRUNCATION_FILE = "truncation.json"  # per task: prompts cut to extraction.max_length (see extract_job)


# ---------------------------------------------------------------- tasks
def select_suite(config: StudyConfig):
    """Load the task source, then keep what :func:`select_tasks` keeps."""
    from taskscope.tasks import load_suite

    return select_tasks(load_suite(config.tasks.source, **config.tasks.options), config)


def select_tasks(suite, config: StudyConfig):
    """Keep ``tasks`` (in order) or ``clusters`` of a loaded ``suite``, then cap tasks per cluster."""
    sel = config.tasks
    if sel.tasks is not None:
        suite = suite.select(sel.tasks)
    if sel.clusters is not None:
        suite = suite.by_cluster(sel.clusters)
    if sel.max_tasks_per_cluster is not None:
        counts: dict[str, int] = {}

        def keep(task) -> bool:
            counts[task.cluster] = counts.get(task.cluster, 0) + 1
            return counts[task.cluster] <= sel.max_tasks_per_cluster

        suite = suite.filter(keep)
    if len(suite) == 0:
        raise ValueError(f"tasks: the selection from {sel.source!r} is empty")
    return suite


def formatted_splits(config: StudyConfig, parts: tuple[str, ...], suite=None) -> dict[str, dict[str, list[dict]]]:
    """Per task of ``suite`` (default: :func:`select_suite`), the formatted examples of each split in ``parts``
    (``train``, ``test``, ``validation``).

    One split per task (``n_inputs`` MOSSA inputs as the test split, the validation share of
    ``split_task``, ``n_train`` for training), so every stage that asks sees the same, disjoint examples.
    """
    from taskscope.tasks.formats import PromptFormat, format_task
    from taskscope.tasks.splits import split_task

    fmt = PromptFormat.model_validate(config.prompt_format)
    out = {}
    for task in suite if suite is not None else select_suite(config):
        split = split_task(task, test=config.tasks.n_inputs, train=config.tasks.n_train, seed=config.tasks.seed)
        out[task.name] = {"cluster": task.cluster, **{
            part: [asdict(e) for e in format_task(task, getattr(split, part), fmt, seed=config.tasks.seed)]
            for part in parts}}
    return out


def run_tasks(ctx: StageContext) -> None:
    """Load and select the suite; record what its loader dropped (``dropped.json``, a warning when anything
    was); split every task and format the training examples and the MOSSA inputs (``tasks.json``)."""
    suite = select_suite(ctx.config)
    write_dropped(suite, ctx.out_dir)
    splits = formatted_splits(ctx.config, ("train", "test"), suite)
    atomic_write_json(ctx.out_dir / "tasks.json", {
        name: {"cluster": info["cluster"], "train": info["train"], "inputs": info["test"]}
        for name, info in splits.items()})


def write_dropped(suite, out_dir: Path) -> dict[str, Any]:
    """Write ``suite.dropped_summary()`` to ``out_dir/dropped.json`` (the run manifest counts it); warn when
    the loader or its filters dropped any task or record."""
    summary = suite.dropped_summary()
    atomic_write_json(out_dir / DROPPED_FILE, summary)
    if summary["n_tasks"] or summary["n_records"]:
        logger.warning("tasks: the loader of suite %r dropped %d task(s) and %d record(s); see %s in %s",
                       suite.name, summary["n_tasks"], summary["n_records"], DROPPED_FILE, out_dir)
    return summary


def validation_records(config: StudyConfig) -> dict[str, list[dict]]:
    """Per task, its formatted validation examples (capped by ``control_evaluation.max_examples``)."""
    cap = config.control_evaluation.max_examples
    return {name: info["validation"][:cap] for name, info in formatted_splits(config, ("validation",)).items()}


def read_tasks(folder: Path) -> dict[str, dict[str, Any]]:
    return json.loads((Path(folder) / "tasks.json").read_text())


def _examples(records: list[dict]):
    from taskscope.tasks.formats import FormattedExample

    return [FormattedExample(**{**r, "targets": tuple(r["targets"])}) for r in records]


# ---------------------------------------------------------------- training
def _record_checkpoint(base_spec: str, load: dict, result, out_dir: Path) -> None:
    """Write ``model.json``: how to reload the trained model (paths relative to the item folder)."""
    from taskscope.models import load_model

    final = Path(result.final_checkpoint)
    if (final / "adapter" / "adapter_config.json").is_file():
        weights, kind = final / "adapter", "lora"
    else:  # full fine-tuning saved the model only: keep the base tokenizer next to it
        weights, kind = final / "model", "full"
        load_model(base_spec, **load).tokenizer.save_pretrained(weights)
    atomic_write_json(Path(out_dir) / CHECKPOINT_FILE, {
        "base": base_spec, "kind": kind, "steps": result.steps, "stop_reason": stop_reason(result),
        "weights": str(weights.resolve().relative_to(Path(out_dir).resolve()))})


def stop_reason(result) -> str:
    """Why training stopped: the result's ``stop_reason`` (or its ``result.json``'s), else ``"max_steps"``."""
    reason = getattr(result, "stop_reason", None)
    final = Path(result.final_checkpoint) / "result.json"
    if reason is None and final.is_file():
        reason = json.loads(final.read_text()).get("stop_reason")
    return str(reason) if reason else "max_steps"


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
    held_out = {task: _examples(validation)} if validation and not settings.validation_share else None
    results = train_control(lambda: load_model(base_spec, **load), {task: _examples(records)},
                            settings, Path(out_dir) / "train", validation=held_out, tracking=tracking)
    _record_checkpoint(base_spec, load, results[task], out_dir)


def multitask_job(base_spec: str, load: dict, train_config: dict, data: dict[str, list[dict]], tracking,
                  out_dir: Path) -> None:
    """Instruction-tune the base model on ``data`` (task -> formatted examples) with ``train_multitask``."""
    from taskscope.models import load_model
    from taskscope.train.config import TrainConfig
    from taskscope.train.modes import train_multitask

    loaded = load_model(base_spec, **load)
    result = train_multitask(loaded, {task: _examples(records) for task, records in data.items()},
                             TrainConfig.model_validate(train_config), Path(out_dir) / "train", tracking=tracking)
    _record_checkpoint(base_spec, load, result, out_dir)


def trained_spec(item_dir: Path) -> str:
    """The ``load_model`` spec of a trained item: ``BASE+lora:ADAPTER`` for LoRA, else the model folder."""
    info = json.loads((Path(item_dir) / CHECKPOINT_FILE).read_text())
    weights = (Path(item_dir) / info["weights"]).resolve()
    return f"{info['base']}+lora:{weights}" if info["kind"] == "lora" else str(weights)


def run_controls(ctx: StageContext) -> None:
    """One control per task and seed: items ``{task}`` (seed 0) and ``{task}@s{k}`` (replicates)."""
    config: StudyConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    validation = validation_records(config)
    jobs = {control_item(name, seed): (config.model, load_kwargs(config), seeded_training(config.control_training, seed),
                                       name, info["train"], validation.get(name, []),
                                       ctx.tracking(f"controls/{control_item(name, seed)}"))
            for seed in range(config.control_seeds) for name, info in tasks.items()}
    ctx.map_items(control_job, jobs, "train control models", atomic=False)


# ---------------------------------------------------------------- control scores
def score_job(model_spec: str, load: dict, settings: dict, records: dict[str, list[dict]], out_dir: Path) -> None:
    """Per task: per-example target loss (and ROUGE-L / exact match with generation) -> ``scores.json``."""
    from taskscope.evaluate import EvalSettings, evaluate_examples
    from taskscope.models import load_model

    loaded = load_model(model_spec, **load)
    out = {}
    for task, task_records in records.items():
        frame = evaluate_examples(loaded, _examples(task_records), EvalSettings.model_validate(settings))
        out[task] = {column: [float(v) for v in frame[column]] for column in SCORE_COLUMNS if column in frame}
    atomic_write_json(Path(out_dir) / "scores.json", out)


SCORE_COLUMNS = ("loss", "rouge_l", "exact_match")


def _eval_settings(config: StudyConfig) -> dict:
    ev, train = config.control_evaluation, config.control_training
    settings = {"generate": ev.generate, "loss": True, "max_new_tokens": ev.max_new_tokens,
                "batch_size": ev.batch_size}
    for key in ("max_length", "max_target_length"):
        if key in train:
            settings[key] = train[key]
    return settings


def run_control_scores(ctx: StageContext) -> None:
    """Score every control and the base model on the validation split of the control's task (``controls.csv``)."""
    from taskscope.analysis.controls import controls_table

    config: StudyConfig = ctx.config
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


def seen_tasks(config: StudyConfig, tasks: dict[str, dict], model_name: str) -> list[str]:
    """Tasks the experimental model trains on: all minus its held-out tasks and clusters."""
    spec = next(m for m in config.experimental_models if m.name == model_name)
    return [t for t, info in tasks.items()
            if t not in spec.heldout_tasks and info["cluster"] not in spec.heldout_clusters]


def run_experimental(ctx: StageContext) -> None:
    config: StudyConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    jobs = {}
    for model in config.experimental_models:
        if model.kind != "multitask":
            continue
        clusters = {info["cluster"] for info in tasks.values()}
        for field, names, known in (("heldout_tasks", model.heldout_tasks, set(tasks)),
                                    ("heldout_clusters", model.heldout_clusters, clusters)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"experimental_models[{model.name!r}].{field}: {unknown} not in the selected tasks' "
                                 f"{'names' if field == 'heldout_tasks' else 'clusters'} {sorted(known)}")
        seen = seen_tasks(config, tasks, model.name)
        if not seen:
            raise ValueError(f"experimental model {model.name!r} holds out every task")
        jobs[model.name] = (config.model, load_kwargs(config), config.multitask_training,
                            {t: tasks[t]["train"] for t in seen}, ctx.tracking(f"experimental/{model.name}"))
    ctx.map_items(multitask_job, jobs, "instruction-tune experimental models", atomic=False)


# ---------------------------------------------------------------- extraction
def extract_job(model_spec: str, load: dict, extraction: dict, prompts: dict[str, list[str]], out_dir: Path) -> None:
    """Hidden states ``(L+1, n, d)`` of every task's prompts, saved as one safetensors file (tensor per task);
    ``truncation.json`` beside it counts, per task, the prompts cut to ``extraction.max_length``."""
    from safetensors.torch import save_file

    from taskscope.models import load_model
    from taskscope.represent import extract_hidden_states
    from taskscope.represent.extract import context_length, tokenize

    loaded = load_model(model_spec, **{**load, "dtype": extraction["dtype"]})
    limit = extraction["max_length"] or context_length(loaded.model)
    tokens = {task: tokenize(loaded.tokenizer, texts, limit, extraction["truncation_side"])
              for task, texts in prompts.items()}
    states = {task: extract_hidden_states(loaded.model, loaded.tokenizer, tokens[task], batch_size=extraction["batch_size"],
                                          pooling=extraction["pooling"], share_prefix=extraction["share_prefix"],
                                          final_norm=extraction["final_norm"], description=f"extract {task}").contiguous()
              for task in prompts}
    save_file(states, str(Path(out_dir) / STATES_FILE))
    atomic_write_json(Path(out_dir) / TRUNCATION_FILE, {task: t.summary() for task, t in tokens.items()})


def run_extract(ctx: StageContext) -> None:
    config: StudyConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    prompts = {t: [e["prompt"] for e in info["inputs"]] for t, info in tasks.items()}
    extraction = config.extraction.model_dump()
    jobs = {f"control-{control_item(t, seed)}": (trained_spec(ctx.inputs["controls"] / "items" / control_item(t, seed)),
                                                 load_kwargs(config), extraction, {t: prompts[t]})
            for seed in range(config.control_seeds) for t in tasks}
    for model in config.experimental_models:
        spec = config.model if model.kind == "pretrained" else trained_spec(ctx.inputs["experimental"] / "items" / model.name)
        jobs[f"exp-{model.name}"] = (spec, load_kwargs(config), extraction, prompts)
    ctx.map_items(extract_job, jobs, "extract hidden states")


def load_states(extract_dir: Path, item: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(extract_dir) / "items" / item / STATES_FILE))


# ---------------------------------------------------------------- similarity and analysis
def run_similarity(ctx: StageContext) -> None:
    from taskscope.analysis.measures import measure_table
    from taskscope.analysis.mossa import DIFFERENCE_COLUMNS, mossa_differences, mossa_table

    config: StudyConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    controls = {t: load_states(ctx.inputs["extract"], f"control-{t}")[t] for t in tasks}
    experimental = {m: load_states(ctx.inputs["extract"], f"exp-{m}") for m in config.model_names()}
    heldout = {m.name: set(tasks) - set(seen_tasks(config, tasks, m.name))
               for m in config.experimental_models if m.kind == "multitask"}
    sim = config.similarity
    table = mossa_table(experimental, controls, {t: info["cluster"] for t, info in tasks.items()},
                        kernels=sim.kernels, debiased=sim.debiased, n_bootstrap=sim.bootstrap.n_resamples,
                        confidence=sim.bootstrap.confidence, seed=sim.bootstrap.seed, heldout=heldout,
                        kernel_args=sim.kernel_args)
    atomic_write_text(ctx.out_dir / "mossa.csv", table.to_csv(index=False))
    baseline = config.report.baseline_model
    diffs = (mossa_differences(experimental, controls, {t: info["cluster"] for t, info in tasks.items()}, baseline,
                               kernels=sim.kernels, debiased=sim.debiased, n_bootstrap=sim.bootstrap.n_resamples,
                               n_permutations=sim.bootstrap.n_resamples, confidence=sim.bootstrap.confidence,
                               seed=sim.bootstrap.seed, kernel_args=sim.kernel_args)
             if len(experimental) > 1 and baseline in experimental else pd.DataFrame(columns=DIFFERENCE_COLUMNS))
    atomic_write_text(ctx.out_dir / "differences.csv", diffs.to_csv(index=False))
    measures = measure_table(experimental, controls, {t: info["cluster"] for t, info in tasks.items()},
                             [(m.name, m.params) for m in sim.measures], heldout=heldout)
    atomic_write_text(ctx.out_dir / "measures.csv", measures.to_csv(index=False))


def _mossa_options(config: StudyConfig) -> dict:
    sim = config.similarity
    return {"kernels": sim.kernels, "debiased": sim.debiased, "n_bootstrap": sim.bootstrap.n_resamples,
            "confidence": sim.bootstrap.confidence, "seed": sim.bootstrap.seed, "kernel_args": sim.kernel_args}


def run_ceiling(ctx: StageContext) -> None:
    """Seed-to-seed CKA of every task's replicate controls (``ceiling.csv``; empty with one control seed)."""
    from taskscope.analysis.ceiling import ceiling_table

    config: StudyConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    replicates = {}
    if config.control_seeds > 1:
        replicates = {t: [load_states(ctx.inputs["extract"], f"control-{control_item(t, seed)}")[t]
                          for seed in range(config.control_seeds)] for t in tasks}
    table = ceiling_table(replicates, {t: info["cluster"] for t, info in tasks.items()}, **_mossa_options(config))
    atomic_write_text(ctx.out_dir / "ceiling.csv", table.to_csv(index=False))


def run_analysis(ctx: StageContext) -> None:
    """Layer map, aggregates, the ceiling comparison and the findings with their verdicts."""
    from taskscope.analysis import cluster_summary, find_layer_map, layer_summary
    from taskscope.analysis.ceiling import compare_to_ceiling
    from taskscope.analysis.findings import write_findings
    from taskscope.analysis.measures import AGREEMENT_COLUMNS, measure_agreement, measures_finding
    from taskscope.analysis.mossa_findings import mossa_findings
    from taskscope.analysis.sensitivity import topk_flips

    config: StudyConfig = ctx.config
    table = pd.read_csv(ctx.inputs["similarity"] / "mossa.csv")
    ceiling = pd.read_csv(ctx.inputs["ceiling"] / "ceiling.csv")
    controls = pd.read_csv(ctx.inputs["control_scores"] / "controls.csv")
    layer_map = find_layer_map(table, config.layer_map)
    atomic_write_text(ctx.out_dir / "layer_map.json", layer_map.to_json())
    atomic_write_text(ctx.out_dir / "layer_summary.csv", layer_summary(table).to_csv(index=False))
    atomic_write_text(ctx.out_dir / "cluster_summary.csv", cluster_summary(table).to_csv(index=False))
    comparison = compare_to_ceiling(table, ceiling)
    atomic_write_text(ctx.out_dir / "ceiling_comparison.csv", comparison.to_csv(index=False))
    sensitivity = topk_flips(table, config.layer_map)
    findings = mossa_findings(table, layer_map, config.layer_map, controls=controls, comparison=comparison,
                              baseline=config.report.baseline_model,
                              heldout_models=[m.name for m in config.experimental_models
                                              if m.heldout_tasks or m.heldout_clusters], sensitivity=sensitivity)
    measures = pd.read_csv(ctx.inputs["similarity"] / "measures.csv")
    agreement = (measure_agreement(measures, table, config.report.baseline_model, alpha=config.layer_map.alpha)
                 if len(measures) and config.report.baseline_model in set(table["experimental_model"])
                 else pd.DataFrame(columns=AGREEMENT_COLUMNS))
    atomic_write_text(ctx.out_dir / "measure_agreement.csv", agreement.to_csv(index=False))
    if len(measures):
        findings.append(measures_finding(agreement))
    write_findings(findings, ctx.out_dir / "findings.json", extra={"sensitivity": sensitivity})


def run_report(ctx: StageContext) -> None:
    """The report from the tables upstream, with the training logs and the manifest of the stages so far."""
    from taskscope.pipeline.manifest import manifest_so_far
    from taskscope.pipeline.rebuild import mossa_report

    mossa_report(ctx.config, similarity=ctx.inputs["similarity"], analysis=ctx.inputs["analysis"],
                 control_scores=ctx.inputs["control_scores"], out_dir=ctx.out_dir, stage_dirs=ctx.inputs,
                 manifest=manifest_so_far(ctx))


def study_stages() -> list[Stage]:
    """The stages of a MOSSA study, in run order, with the config slice each one reads."""
    dump = lambda model: model.model_dump(mode="json")
    return [
        Stage("tasks", run_tasks, lambda c: {"tasks": dump(c.tasks), "prompt_format": c.prompt_format,
                                             "data": data_fingerprint(c.tasks.source)}, version="2"),
        Stage("controls", run_controls,
              lambda c: {"model": c.model, **model_options_slice(c), "train": c.control_training,
                         "seeds": c.control_seeds}, needs=("tasks",), version="3"),
        Stage("control_scores", run_control_scores,
              lambda c: {"evaluation": dump(c.control_evaluation), "seeds": c.control_seeds,
                         **model_options_slice(c)},
              needs=("tasks", "controls"), publish=("controls.csv",), version="1"),
        Stage("experimental", run_experimental,
              lambda c: {"model": c.model, **model_options_slice(c), "train": c.multitask_training,
                         "models": [dump(m) for m in c.experimental_models if m.kind == "multitask"]},
              needs=("tasks",), version="1"),
        Stage("extract", run_extract,
              lambda c: {"extraction": dump(c.extraction), "models": [dump(m) for m in c.experimental_models],
                         "seeds": c.control_seeds, **model_options_slice(c)},
              needs=("tasks", "controls", "experimental"), version="3"),  # 3: layer L after the final norm
        Stage("similarity", run_similarity, lambda c: {"similarity": dump(c.similarity), "baseline": c.report.baseline_model},
              needs=("tasks", "extract"), publish=("mossa.csv", "differences.csv", "measures.csv"), version="3"),
        Stage("ceiling", run_ceiling, lambda c: {"similarity": dump(c.similarity), "seeds": c.control_seeds},
              needs=("tasks", "extract"), publish=("ceiling.csv",), version="1"),
        Stage("analysis", run_analysis,
              lambda c: {"layer_map": dump(c.layer_map), "baseline": c.report.baseline_model,
                         "heldout": [m.name for m in c.experimental_models if m.heldout_tasks or m.heldout_clusters]},
              needs=("similarity", "ceiling", "control_scores"),
              publish=("layer_map.json", "layer_summary.csv", "cluster_summary.csv",
                       "ceiling_comparison.csv", "findings.json", "measure_agreement.csv"), version="5"),
        Stage("report", run_report, lambda c: c.model_dump(mode="json"),
              needs=("similarity", "analysis", "control_scores", "controls", "experimental"),
              publish=("report.html", "figures"), version="3"),
    ]
