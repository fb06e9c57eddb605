"""`train`: the training loop shared by every mode (control, multi-task, few-shot).

Order of operations of ``train(loaded, data, config, out_dir)``:

1. If ``out_dir/final`` exists the run is finished: its weights are loaded into the model (after step 2's
   LoRA wrapping) and returned.
2. Seed python, numpy and torch with ``config.seed``; add LoRA adapters (``config.lora``) unless the model
   already has them, otherwise every weight trains.
3. Tokenise every task (`data.encode_tasks`); with ``truncation="fail"`` check every reference fits.
4. Build the data plan (`plan.EpochPlan`, or `plan.SamplerPlan` around ``make_sampler(config.sampler)``), the
   total number of steps, AdamW (weight decay on matrices only) and the schedule (``get_scheduler``:
   linear warm-up then linear decay, or constant); `accelerate.Accelerator.prepare` wraps the loss module and
   the optimizer (DDP/FSDP under ``accelerate launch``).
5. Resume: with checkpoints under ``out_dir/checkpoints``, load the latest (weights, optimizer, scheduler,
   data cursor, sampler state, RNG states) and drop later log records.
6. Per optimizer step ``s``: every ``unsupervised_every``-th step is unsupervised (`unsupervised`), the
   others take the next items of the plan; this process's micro-batches (`plan.rank_share`) run forward and
   backward (gradients synchronised on the last one only); the loss is the sum of target-token losses over
   the step divided by this process's number of target tokens; clip, optimizer step, scheduler step.  Per-task
   token-loss sums are summed over processes and fed to ``sampler.observe``; logs every ``log_every``,
   validation every ``eval_every`` and after the last step, a checkpoint every ``checkpoint_every`` steps.
7. Write ``out_dir/final`` (weights + ``result.json``) atomically and return a `TrainResult`; ``loaded.model``
   is the trained model (a PEFT model for LoRA runs).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from transformers import get_scheduler

from taskscope.models.loaded import LoadedModel
from taskscope.models.lora import add_lora

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import (
    IGNORE_INDEX,
    ExampleLike,
    Item,
    collate,
    encode_tasks,
    group_by_length,
    pad_token_id,
)
from .logging import LOG_FILE, TrainLogger, truncate_log
from .objective import TargetLoss, unwrap_peft
from .plan import EpochPlan, ItemMaker, SamplerPlan, limit_data, rank_share, warmup_count
from .plan import total_steps as plan_total_steps
from .samplers import make_sampler
from .unsupervised import UnsupervisedSource, read_text_source

UNSUPERVISED = "unsupervised"


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run lives: ``final_checkpoint`` holds the weights, ``log_path`` the JSONL log."""

    out_dir: Path
    final_checkpoint: Path
    steps: int
    log_path: Path


def _has_accelerator_device() -> bool:
    """Whether torch sees a GPU-like device; without one, `Accelerator(cpu=True)` runs DDP on gloo."""
    accelerator_api = getattr(torch, "accelerator", None)
    if accelerator_api is not None:
        return bool(accelerator_api.is_available())
    return torch.cuda.is_available()


def _total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """The supervised steps (``max_steps`` or ``epochs``) plus the unsupervised steps mixed in (`plan.total_steps`)."""
    return plan_total_steps(config, steps_per_epoch)


def _optimizer(model: Any, config: TrainConfig) -> torch.optim.AdamW:
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    decay = [p for name, p in trainable if p.ndim >= 2]
    no_decay = [p for name, p in trainable if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def _prepare_model(loaded: LoadedModel, config: TrainConfig) -> Any:
    model = loaded.model
    if config.lora is not None and not ckpt.is_lora(model):
        lora = config.lora
        model = add_lora(model, r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=lora.target_modules)
    elif config.lora is None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    loaded.model = model
    return model


class _Batcher:
    """Collates items for the model of this run."""

    def __init__(self, loaded: LoadedModel) -> None:
        hf = unwrap_peft(loaded.model)
        self.pad_id = pad_token_id(loaded.tokenizer)
        self.is_encoder_decoder = loaded.is_encoder_decoder
        self.decoder_start = getattr(hf.config, "decoder_start_token_id", None)

    def __call__(self, items: Sequence[Item], device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = collate(items, pad_id=self.pad_id, is_encoder_decoder=self.is_encoder_decoder,
                        decoder_start_id=self.decoder_start)
        task_index = batch.pop("task_index")
        return {k: v.to(device) for k, v in batch.items()}, task_index.to(device)

    def target_count(self, batch: dict[str, torch.Tensor]) -> int:
        labels = batch["labels"] if self.is_encoder_decoder else batch["labels"][:, 1:]
        return int((labels != IGNORE_INDEX).sum())


def train(
    loaded: LoadedModel,
    data: Mapping[str, Sequence[ExampleLike]],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    validation: Mapping[str, Sequence[ExampleLike]] | None = None,
    text_source: str | Path | Sequence[str] | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``loaded`` on ``data`` (task name -> formatted examples); see the module docstring."""
    out_dir = Path(out_dir)
    final_dir = out_dir / ckpt.FINAL
    log_path = out_dir / LOG_FILE
    set_seed(config.seed)
    model = _prepare_model(loaded, config)
    if (final_dir / "result.json").is_file():
        ckpt.load_weights(model, final_dir)
        loaded.refresh_fingerprint()
        result = json.loads((final_dir / "result.json").read_text())
        return TrainResult(out_dir, final_dir, int(result["steps"]), log_path)
    if config.unsupervised_every and text_source is None:
        raise ValueError("config.unsupervised_every is set but no text_source was given")

    accelerator = Accelerator(cpu=not _has_accelerator_device())
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    if fsdp and config.checkpoint_every:
        raise ValueError("resumable checkpoints are not supported under FSDP yet: set checkpoint_every=0 "
                         "(the final weights are still gathered and saved)")
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    encoded = limit_data(encode_tasks(loaded.tokenizer, data), config.data_limit, config.seed)
    tasks = list(encoded)
    make_item = ItemMaker(seed=config.seed, max_length=config.max_length, max_target_length=config.max_target_length,
                          truncation=config.truncation, is_encoder_decoder=loaded.is_encoder_decoder)
    if config.truncation == "fail":
        make_item.check_all(encoded)
    k = config.unsupervised_every
    sampler = None
    if config.sampler is None:
        plan: EpochPlan | SamplerPlan = EpochPlan(
            encoded, make_item, batch_size=config.batch_size, grad_accum=config.grad_accum, world=world,
            cap=config.cap, seed=config.seed, group_by_length=config.group_by_length)
        total_steps = _total_steps(config, plan.steps_per_epoch)
    else:
        sizes = [len(encoded[t]) for t in tasks]
        per_step = config.batch_size * config.grad_accum * world
        total_steps = _total_steps(config, math.ceil(sum(min(n, config.cap or n) for n in sizes) / per_step))
        kwargs = {"total_steps": total_steps, **config.sampler_kwargs}
        sampler = make_sampler(config.sampler, sizes, seed=config.seed, cap=config.cap, task_names=tasks, **kwargs)
        plan = SamplerPlan(encoded, make_item, sampler, batch_size=config.batch_size, grad_accum=config.grad_accum,
                           world=world, seed=config.seed)
    unsupervised = None
    if k:
        hf = unwrap_peft(model)
        unsupervised = UnsupervisedSource(
            read_text_source(text_source), loaded.tokenizer, seed=config.seed, max_length=config.max_length,
            max_target_length=config.max_target_length, is_encoder_decoder=loaded.is_encoder_decoder,
            vocab_size=hf.get_output_embeddings().weight.shape[0], task_index=len(tasks))
    validation_items = None
    if validation:
        validation_items = {t: [make_item(ex, i, 0) for ex in exs]
                            for i, (t, exs) in enumerate(encode_tasks(loaded.tokenizer, validation).items())}

    optimizer = _optimizer(model, config)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup_count(config, total_steps),
                              num_training_steps=total_steps)
    start_step, rng = 0, None
    latest = ckpt.latest_checkpoint(out_dir)
    if latest is not None:
        ckpt.load_weights(model, latest)
        states, rng, trainer_state = ckpt.read_training_state(latest, rank)
        _check_same_config(trainer_state["config"], config, latest)
        if trainer_state["world"] != world:
            raise ValueError(f"cannot resume from {latest}: written by {trainer_state['world']} processes, "
                             f"now {world}; the data order depends on the number of processes")
        start_step = int(trainer_state["step"])
        plan.load_state_dict(trainer_state["plan"])
    loss_module = TargetLoss(model)
    loss_module, optimizer = accelerator.prepare(loss_module, optimizer)
    if latest is not None:
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
        if accelerator.is_main_process:
            truncate_log(log_path, start_step)
    batcher = _Batcher(loaded)
    device = accelerator.device
    logger = TrainLogger(out_dir, enabled=accelerator.is_main_process, total_steps=total_steps,
                         start_step=start_step, progress=progress)
    names = tasks + [UNSUPERVISED]
    window = torch.zeros((2, len(names)), dtype=torch.float64)
    trainable = [p for p in loss_module.parameters() if p.requires_grad]
    if rng is not None:
        ckpt.restore_rng_state(rng)
    loss_module.train()
    try:
        for step in range(start_step, total_steps):
            if k and (step + 1) % k == 0:
                assert unsupervised is not None
                u = (step + 1) // k - 1
                microbatches = group_by_length(unsupervised.items(u, config.batch_size * config.grad_accum * world), config.batch_size)
            else:
                microbatches = plan.next_step(step)
            mine = [batcher(items, device) for items in rank_share(microbatches, rank, world)]
            n_targets = max(1, sum(batcher.target_count(batch) for batch, _ in mine))
            step_sums = torch.zeros((2, len(names)), dtype=torch.float64, device=device)
            for i, (batch, task_index) in enumerate(mine):
                sync = contextlib.nullcontext() if i == len(mine) - 1 else accelerator.no_sync(loss_module)
                with sync:
                    token_losses, rows = loss_module(**batch)
                    accelerator.backward(token_losses.sum() / n_targets)
                token_task = task_index[rows]
                step_sums[0].index_add_(0, token_task, token_losses.detach().double())
                step_sums[1].index_add_(0, token_task, torch.ones_like(token_losses, dtype=torch.float64))
            if config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if world > 1:
                step_sums = accelerator.reduce(step_sums, reduction="sum")
            step_sums = step_sums.cpu()
            window += step_sums
            if sampler is not None:
                for task_index_, (total, count) in enumerate(zip(step_sums[0, :-1].tolist(), step_sums[1, :-1].tolist())):
                    if count > 0:
                        sampler.observe(task_index_, total / count, step)
            done = step + 1
            if done % config.log_every == 0 or done == total_steps:
                logger.log(_train_record(done, window, names, scheduler, sampler, step))
                window.zero_()
            if validation_items and ((config.eval_every and done % config.eval_every == 0) or done == total_steps):
                logger.log({"kind": "eval", "step": done,
                            "task_loss": _validation_loss(loss_module, batcher, validation_items, config, device)})
            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < total_steps:
                _save_checkpoint(accelerator, ckpt.step_dir(out_dir, done), loss_module, optimizer, scheduler,
                                 {"step": done, "total_steps": total_steps, "world": world, "plan": plan.state_dict(),
                                  "config": config.model_dump(mode="json")})
            logger.advance(done)
            if on_step is not None:
                on_step(done)
    finally:
        logger.close()
    _save_final(accelerator, final_dir, loss_module, total_steps, gather=fsdp)
    loaded.model = accelerator.unwrap_model(loss_module).model
    loaded.refresh_fingerprint()
    return TrainResult(out_dir, final_dir, total_steps, log_path)


def _check_same_config(saved: dict[str, Any], config: TrainConfig, where: Path) -> None:
    """Refuse to resume a checkpoint written under a different config (the data order would differ)."""
    current = config.model_dump(mode="json")
    changed = sorted(key for key in current.keys() | saved.keys() if current.get(key) != saved.get(key))
    if changed:
        raise ValueError(f"cannot resume from {where}: config fields changed since it was written: {', '.join(changed)}; "
                         "use a new out_dir")


def _train_record(done: int, window: torch.Tensor, names: list[str], scheduler: Any, sampler: Any, step: int) -> dict[str, Any]:
    sums, counts = window[0], window[1]
    record: dict[str, Any] = {
        "kind": "train", "step": done, "lr": float(scheduler.get_last_lr()[0]),
        "loss": float(sums.sum() / counts.sum().clamp(min=1)),
        "task_loss": {name: float(sums[i] / counts[i]) for i, name in enumerate(names) if counts[i] > 0},
    }
    if sampler is not None:
        record["p"] = sampler.log_record(step)["p"]
    return record


@torch.no_grad()
def _validation_loss(loss_module: Any, batcher: _Batcher, items: dict[str, list[Item]], config: TrainConfig,
                     device: torch.device) -> dict[str, float]:
    """Mean target-token loss per validation task (dropout off; every process computes all of it)."""
    loss_module.eval()
    losses = {}
    for task, task_items in items.items():
        total, count = 0.0, 0
        for start in range(0, len(task_items), config.batch_size):
            batch, _ = batcher(task_items[start:start + config.batch_size], device)
            token_losses, _ = loss_module(**batch)
            total, count = total + float(token_losses.double().sum()), count + token_losses.numel()
        losses[task] = total / max(count, 1)
    loss_module.train()
    return losses


def _save_checkpoint(accelerator: Accelerator, final: Path, loss_module: Any, optimizer: Any, scheduler: Any,
                     trainer_state: dict[str, Any]) -> None:
    """Write one checkpoint atomically: main process stages weights and state, every process its RNG."""
    if accelerator.is_main_process:
        staging = ckpt.prepare_staging(final)
    accelerator.wait_for_everyone()
    staging = ckpt.staging_dir(final)
    ckpt.write_rank_rng(staging, accelerator.process_index)
    if accelerator.is_main_process:
        ckpt.save_weights(accelerator.unwrap_model(loss_module).model, staging)
        ckpt.write_training_state(staging, optimizer=optimizer, scheduler=scheduler, trainer_state=trainer_state)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.publish(staging, final)
    accelerator.wait_for_everyone()


def _save_final(accelerator: Accelerator, final: Path, loss_module: Any, steps: int, *, gather: bool) -> None:
    """Write ``final`` (weights + result.json); under FSDP the full state dict is gathered first (collective)."""
    state = None
    if gather:
        prefix = "model."
        state = {k.removeprefix(prefix): v for k, v in accelerator.get_state_dict(loss_module).items()}
    if accelerator.is_main_process:
        staging = ckpt.prepare_staging(final)
        ckpt.save_weights(accelerator.unwrap_model(loss_module).model, staging, state_dict=state)
        ckpt.write_json(staging / "result.json", {"steps": steps})
        ckpt.publish(staging, final)
    accelerator.wait_for_everyone()
