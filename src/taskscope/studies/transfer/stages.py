"""The transfer study as cached stages: tasks -> instruction tuning -> evaluation -> analysis -> report.

================  ==========================================  ============================================
stage             reads (config slice + upstream)             writes
================  ==========================================  ============================================
tasks             ``tasks``, ``prompt_format``                ``tasks.json``: seen tasks' formatted train /
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

The stage functions live in :mod:`.tasks`, :mod:`.evaluation`, :mod:`.analysis` and :mod:`.report`; this module
lists them in run order with the config slice each one reads.  Fan-out stages run one job per item (model,
model x context, checkpoint) through the executor; a job is a top-level function of plain arguments.  Every evaluation goes through one `taskscope.evaluate.EvalCache`
under ``run_dir/eval_cache``, so a changed few-shot grid reruns the ``fewshot`` stage but retrains and
re-evaluates only the (task, shots, seed) runs it has not seen before.
"""

from __future__ import annotations

from typing import Any

from taskscope.pipeline.cache import data_fingerprint
from taskscope.pipeline.config import load_kwargs, model_options_slice, section_slice
from taskscope.pipeline.stages import Stage, StageContext
from taskscope.studies.common.tasks import read_tasks
from taskscope.studies.common.training import instruction_tune_job
from taskscope.studies.transfer.analysis import FINDINGS_FILE, expected_tables, run_analysis
from taskscope.studies.transfer.config import TransferConfig
from taskscope.studies.transfer.evaluation import run_fewshot, run_icl, run_seen_eval, run_trajectory
from taskscope.studies.transfer.report import run_report
from taskscope.studies.transfer.tasks import run_tasks


def run_instruction_tune(ctx: StageContext) -> None:
    config: TransferConfig = ctx.config
    seen = read_tasks(ctx.inputs["tasks"])["seen"]
    data = {task: info["train"] for task, info in seen.items()}
    text_source = (str(config.unsupervised_text) if config.unsupervised_text is not None
                   else [r["prompt"] for records in data.values() for r in records])
    jobs = {m.name: (config.model, load_kwargs(config), section_slice(config.train_config(m.name)), data, text_source,
                     ctx.tracking(f"instruction_tune/{m.name}")) for m in config.models if m.kind == "multitask"}
    ctx.map_items(instruction_tune_job, jobs, "instruction-tune models", atomic=False)


def transfer_stages(config: TransferConfig) -> list[Stage]:
    """The stages of ``config``'s transfer study in run order (``trajectory`` only when configured)."""
    dump = lambda model: model.model_dump(mode="json")
    evaluation = lambda c: {"model": c.model, **model_options_slice(c),
                            "evaluation": {**dump(c.evaluation), "settings": section_slice(c.evaluation.settings)}}
    fewshot = lambda c: {**dump(c.fewshot), "train": section_slice(c.fewshot.train)}
    stages = [
        Stage("tasks", run_tasks, lambda c: {"tasks": dump(c.tasks), "prompt_format": section_slice(c.prompt_format),
                                             "model": c.model, "prompt_budget": c.seen_prompt_budget(),
                                             "data": [data_fingerprint(c.tasks.source),
                                                      data_fingerprint(c.tasks.split_dir)]},
              version="4"),  # 4: the typed prompt format (n_exemplars explicit)
        Stage("instruction_tune", run_instruction_tune,
              lambda c: {"model": c.model, **model_options_slice(c), "unsupervised_text": str(c.unsupervised_text),
                         "train": {name: section_slice(c.train_config(name)) for name in c.multitask_models()},
                         "data": data_fingerprint(c.unsupervised_text)},
              needs=("tasks",), version="2"),  # 2: typed sections
        Stage("seen_eval", run_seen_eval, lambda c: {**evaluation(c), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="2"),  # 2: typed sections
        Stage("icl", run_icl, lambda c: {**evaluation(c), "icl": dump(c.icl), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="2"),  # 2: typed sections
        Stage("fewshot", run_fewshot, lambda c: {**evaluation(c), "fewshot": fewshot(c), "models": c.model_names()},
              needs=("tasks", "instruction_tune"), version="2"),  # 2: typed sections
    ]
    analysis_needs = ("tasks", "seen_eval", "icl", "fewshot")
    if config.analyses.trajectory is not None:
        stages.append(Stage("trajectory", run_trajectory,
                            lambda c: {**evaluation(c), "trajectory": dump(c.analyses.trajectory), "icl": dump(c.icl),
                                       "contexts": c.fewshot.contexts[:1], "seeds": c.fewshot.seeds[:1],
                                       "train": section_slice(c.fewshot.train)},
                            needs=("tasks", "instruction_tune"), version="2"))  # 2: typed sections
        analysis_needs += ("trajectory",)
    stages += [
        Stage("analysis", run_analysis, lambda c: {"analyses": dump(c.analyses), "models": dump_models(c)},
              needs=analysis_needs, publish=(*(f"{name}.csv" for name in expected_tables(config)), FINDINGS_FILE),
              version="4"),  # 4: typed instruction tuning
        Stage("report", run_report, lambda c: c.model_dump(mode="json"), needs=("analysis",),
              publish=("report.html", "figures"), version="3"),  # 3: the config's new vocabulary
    ]
    return stages


def dump_models(config: TransferConfig) -> list[dict[str, Any]]:
    """The models as the analysis stage's slice reads them: each with its merged instruction-tuning config."""
    return [{**m.model_dump(mode="json"),
             "train": section_slice(config.train_config(m.name)) if m.kind == "multitask" else {}}
            for m in config.models]
