"""The MOSSA study as stages: tasks -> controls, experimental -> extract -> similarity -> analysis -> report.

The stage functions live in :mod:`.tasks`, :mod:`.training`, :mod:`.extract`, :mod:`.analysis` and
:mod:`.report`; this module lists them in run order with the config slice each one reads.

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
experimental    ``model``, ``instruction_tuning``,           ``items/{model}/`` one instruction-tuned
                ``models`` + tasks                           model each (pre-trained: nothing to train)
extract         ``extraction`` + tasks, controls,            ``items/{control-task | exp-model}/
                experimental                                 states.safetensors`` ``(L+1, n, d)`` per task
similarity      ``similarity``, ``baseline_model``           ``mossa.csv``, ``differences.csv`` (paired
                + tasks, extract                             intervals and permutation p per layer)
ceiling         ``similarity``, ``control_seeds`` + tasks,   ``ceiling.csv``: seed-to-seed CKA of the
                extract                                      replicate controls (the noise ceiling)
analysis        ``layer_map``, ``baseline_model``            ``layer_map.json``, ``layer_summary.csv``,
                + similarity, ceiling, control_scores        ``cluster_summary.csv``,
                                                             ``ceiling_comparison.csv``, ``findings.json``
report          the whole config + similarity, analysis,    ``figures/``, ``report.html`` (with the
                control_scores, training logs of controls,   training curves and the manifest so far;
                experimental                                 :mod:`.report`)
==============  ===========================================  =======================================

Fan-out stages (controls, control_scores, experimental, extract) run one job per item through the executor; a job
is a top-level function of plain arguments so Ray can ship it.  The heavy packages (models, train,
represent) are imported inside the jobs, so this module imports cheaply.
"""

from __future__ import annotations

from taskscope.pipeline.cache import data_fingerprint
from taskscope.pipeline.config import model_options_slice, section_slice
from taskscope.pipeline.stages import Stage
from taskscope.studies.mossa.analysis import run_analysis, run_ceiling, run_similarity
from taskscope.studies.mossa.config import MossaConfig
from taskscope.studies.mossa.extract import run_extract
from taskscope.studies.mossa.report import run_report
from taskscope.studies.mossa.tasks import run_tasks
from taskscope.studies.mossa.training import run_control_scores, run_controls, run_experimental

TABLES = ("mossa", "layer_summary", "cluster_summary", "differences", "controls", "ceiling", "ceiling_comparison",
          "measures", "measure_agreement")


def expected_tables(config: MossaConfig) -> list[str]:
    """The tables every MOSSA run writes."""
    return list(TABLES)


def mossa_stages(config: MossaConfig | None = None) -> list[Stage]:
    """The stages of a MOSSA study, in run order, with the config slice each one reads (the same for every config)."""
    dump = lambda model: model.model_dump(mode="json")
    return [
        Stage("tasks", run_tasks, lambda c: {"tasks": dump(c.tasks), "prompt_format": section_slice(c.prompt_format),
                                             "data": data_fingerprint(c.tasks.source)},
              version="3"),  # 3: tasks.validation
        Stage("controls", run_controls,
              lambda c: {"model": c.model, **model_options_slice(c), "train": section_slice(c.control_training),
                         "seeds": c.control_seeds}, needs=("tasks",), version="4"),  # 4: typed TrainConfig
        Stage("control_scores", run_control_scores,
              lambda c: {"evaluation": dump(c.control_evaluation), "seeds": c.control_seeds,
                         **model_options_slice(c)},
              needs=("tasks", "controls"), publish=("controls.csv",), version="1"),
        Stage("experimental", run_experimental,
              lambda c: {"model": c.model, **model_options_slice(c), "train": section_slice(c.instruction_tuning),
                         "models": [dump(m) for m in c.models if m.kind == "multitask"]},
              needs=("tasks",), version="2"),  # 2: typed TrainConfig
        Stage("extract", run_extract,
              lambda c: {"extraction": dump(c.extraction), "models": [dump(m) for m in c.models],
                         "seeds": c.control_seeds, **model_options_slice(c)},
              needs=("tasks", "controls", "experimental"), version="4"),  # 4: extraction.load_dtype
        Stage("similarity", run_similarity, lambda c: {"similarity": dump(c.similarity), "baseline": c.baseline_model},
              needs=("tasks", "extract"), publish=("mossa.csv", "differences.csv", "measures.csv"), version="3"),
        Stage("ceiling", run_ceiling, lambda c: {"similarity": dump(c.similarity), "seeds": c.control_seeds},
              needs=("tasks", "extract"), publish=("ceiling.csv",), version="1"),
        Stage("analysis", run_analysis,
              lambda c: {"layer_map": dump(c.layer_map), "baseline": c.baseline_model,
                         "heldout": [m.name for m in c.models if m.heldout_tasks or m.heldout_clusters]},
              needs=("similarity", "ceiling", "control_scores"),
              publish=("layer_map.json", "layer_summary.csv", "cluster_summary.csv",
                       "ceiling_comparison.csv", "findings.json", "measure_agreement.csv"), version="5"),
        Stage("report", run_report, lambda c: c.model_dump(mode="json"),
              needs=("similarity", "analysis", "control_scores", "controls", "experimental"),
              publish=("report.html", "figures"), version="4"),  # 4: the config's new vocabulary
    ]
