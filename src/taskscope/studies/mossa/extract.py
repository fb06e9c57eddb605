"""The MOSSA ``extract`` stage: hidden states of every task's MOSSA inputs under every control and compared model.

Items: ``control-{item}`` (a control's own task only) and ``exp-{model}`` (every task), each one
``states.safetensors`` of ``(L+1, n, d)`` tensors by task, and ``truncation.json`` (prompts cut per task).
"""

from __future__ import annotations

from pathlib import Path

from taskscope.common.files import atomic_write_json
from taskscope.pipeline.config import load_kwargs
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import read_tasks
from taskscope.studies.common.training import model_spec, trained_spec
from taskscope.studies.mossa.config import MossaConfig
from taskscope.studies.mossa.training import control_item

STATES_FILE = "states.safetensors"
TRUNCATION_FILE = "truncation.json"  # per task: prompts cut to extraction.max_length (see extract_job)


def extract_job(model_spec: str, load: dict, extraction: dict, prompts: dict[str, list[str]], out_dir: Path) -> None:
    """Hidden states ``(L+1, n, d)`` of every task's prompts, saved as one safetensors file (tensor per task);
    ``truncation.json`` beside it counts, per task, the prompts cut to ``extraction.max_length``."""
    from safetensors.torch import save_file

    from taskscope.models import load_model
    from taskscope.represent import extract_hidden_states
    from taskscope.represent.extract import context_length, tokenize

    loaded = load_model(model_spec, **{**load, "dtype": extraction["load_dtype"]})
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
    config: MossaConfig = ctx.config
    tasks = read_tasks(ctx.inputs["tasks"])
    prompts = {t: [e["prompt"] for e in info["inputs"]] for t, info in tasks.items()}
    extraction = config.extraction.model_dump()
    jobs = {f"control-{control_item(t, seed)}": (trained_spec(ctx.inputs["controls"] / "items" / control_item(t, seed)),
                                                 load_kwargs(config), extraction, {t: prompts[t]})
            for seed in range(config.control_seeds) for t in tasks}
    for name in config.model_names():
        jobs[f"exp-{name}"] = (model_spec(config, ctx.inputs["experimental"], name), load_kwargs(config), extraction,
                               prompts)
    ctx.map_items(extract_job, jobs, "extract hidden states")


def load_states(extract_dir: Path, item: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(extract_dir) / "items" / item / STATES_FILE))


