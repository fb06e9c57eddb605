"""`train`: the training loop shared by every mode (control, multi-task, few-shot).

Order of operations of ``train(loaded, data, config, out_dir)``:

1. If ``out_dir/final`` exists the run is finished: its weights are loaded into the model (after step 2's
   LoRA wrapping) and its `TrainResult` is read from ``final/result.json``.
2. Seed python, numpy and torch with ``config.seed``; add LoRA adapters (``config.lora``) unless the model
   already has them, otherwise every weight trains.
3. Validation data: ``validation`` as given, or ``config.validation_share`` of each task held out
   (`data.hold_out`).
4. Tokenise every task (`data.encode_tasks`); with ``truncation="fail"`` check every reference fits, else
   warn with counts (`data.warn_truncation`) when any prompt or target will be cut.
5. Build the data plan (`plan.EpochPlan`, or `plan.SamplerPlan` around ``make_sampler(config.sampler)``), the
   total number of steps, AdamW (weight decay on matrices only) and the schedule (``get_scheduler``:
   linear warm-up then linear decay, or constant); `accelerate.Accelerator.prepare` wraps the loss module and
   the optimizer (DDP/FSDP under ``accelerate launch``); the autocast of ``config.autocast_dtype``
   (`precision`).
6. Resume: with checkpoints under ``out_dir/checkpoints``, load the latest (weights, optimizer, scheduler,
   data cursor, sampler state, early-stopping state, RNG states) and drop later log records.
7. Per optimizer step ``s``: every ``unsupervised_every``-th step is unsupervised (`unsupervised`), the
   others take the next items of the plan; this process's micro-batches (`plan.rank_share`) are split into
   forward passes by shared prompt prefix (`shared_prefix`) that run forward and backward (gradients
   synchronised on the last one only); the loss is the sum of target-token losses over the step divided by
   this process's number of target tokens; clip, optimizer step, scheduler step.  Per-task token-loss sums
   are summed over processes and fed to ``sampler.observe``; logs every ``log_every``, validation every
   ``eval_every`` and after the last step (each fed to `stopping.EarlyStopping`, which may end the run), a
   checkpoint every ``checkpoint_every`` steps.
8. ``restore_best``: copy back the trainable weights of the best evaluation (``weights_step`` in the result).
9. Write ``out_dir/final`` (weights + ``result.json``: steps, stop reason, validation scores) atomically and
   return a `TrainResult`; ``loaded.model`` is the trained model (a PEFT model for LoRA runs).
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

from taskscope.common.fastpaths import note_fast_path
from taskscope.models.capabilities import cache_keyword
from taskscope.models.loaded import LoadedModel
from taskscope.models.lora import add_lora

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import (
    IGNORE_INDEX,
    ExampleLike,
    Item,
    encode_tasks,
    group_by_length,
    hold_out,
    pad_token_id,
    warn_truncation,
)
from .logging import LOG_FILE, TrainLogger, Tracking, resolve_trackers, truncate_log
from .objective import TargetLoss, unwrap_peft
from .plan import EpochPlan, ItemMaker, SamplerPlan, limit_data, rank_share, warmup_count
from .plan import total_steps as plan_total_steps
from .precision import AutocastFactory, autocast_for
from .samplers import make_sampler
from .shared_prefix import collate_unit, split_microbatch
from .stopping import EarlyStopping
from .unsupervised import UnsupervisedSource, read_text_source

UNSUPERVISED = "unsupervised"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class TrainResult:
    """A finished run: ``final_checkpoint`` holds the weights, ``log_path`` the JSONL log.

    ``steps``: optimizer steps run; ``stop_reason``: ``"max_steps"``, ``"epochs"``, ``"target_reached"`` or
    ``"no_improvement"`` (`stopping`); ``validation_loss``: mean validation loss at the last step (``None``
    without validation data); ``best_validation_loss`` / ``best_step``: the lowest one and where.  The same
    fields are in ``final/result.json``.
    """

    out_dir: Path
    final_checkpoint: Path
    steps: int
    log_path: Path
    stop_reason: str | None = None
    validation_loss: float | None = None
    best_validation_loss: float | None = None
    best_step: int | None = None

    @classmethod
    def from_final(cls, out_dir: str | Path) -> TrainResult:
        """The result of the finished run in ``out_dir`` (read from ``final/result.json``)."""
        out_dir = Path(out_dir)
        record = json.loads((out_dir / ckpt.FINAL / RESULT_FILE).read_text())
        return cls(out_dir, out_dir / ckpt.FINAL, int(record["steps"]), out_dir / LOG_FILE,
                   record.get("stop_reason"), record.get("validation_loss"), record.get("best_validation_loss"),
                   record.get("best_step"))


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


def _split_validation(data: Mapping[str, Sequence[ExampleLike]], validation: Mapping[str, Sequence[ExampleLike]] | None,
                      config: TrainConfig) -> tuple[Mapping[str, Sequence[ExampleLike]], Mapping[str, Sequence[ExampleLike]] | None]:
    """(training data, validation data): ``validation=`` as given, or ``validation_share`` held out per task."""
    if config.validation_share > 0:
        if validation:
            raise ValueError("give validation= or config.validation_share, not both")
        return hold_out(data, config.validation_share, config.seed)
    if (config.stop_target_loss is not None or config.stop_patience is not None) and not validation:
        raise ValueError("stop_target_loss / stop_patience need validation data: pass validation= or set "
                         "config.validation_share")
    return data, validation


class _Batcher:
    """Turns a micro-batch of items into the tensors of its forward passes (`shared_prefix.Unit` each)."""

    def __init__(self, loaded: LoadedModel, config: TrainConfig) -> None:
        hf = unwrap_peft(loaded.model)
        self.pad_id = pad_token_id(loaded.tokenizer)
        self.is_encoder_decoder = loaded.is_encoder_decoder
        self.decoder_start = getattr(hf.config, "decoder_start_token_id", None)
        self.min_shared_tokens = config.min_shared_tokens
        self.no_prefix_reason = (
            "switched off (share_prefix=False)" if not config.share_prefix else
            "an encoder-decoder runs whole prompts in its encoder" if self.is_encoder_decoder else
            f"{type(hf.base_model).__name__} does not continue a KV cache" if cache_keyword(hf.base_model) is None
            else "")

    def __call__(self, items: Sequence[Item], device: torch.device) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """(batch tensors, task index per row) of every forward pass of the micro-batch ``items``."""
        units = split_microbatch(items, min_shared_tokens=self.min_shared_tokens, enabled=not self.no_prefix_reason)
        shared = any(unit.prefix_ids for unit in units)
        note_fast_path("train.share_prefix", used=shared, reason=self.no_prefix_reason or (
            "" if shared else f"no prompt prefix of >= {self.min_shared_tokens} tokens shared in the micro-batch"))
        out = []
        for unit in units:
            batch = collate_unit(unit, pad_id=self.pad_id, is_encoder_decoder=self.is_encoder_decoder,
                                 decoder_start_id=self.decoder_start)
            task_index = batch.pop("task_index")
            out.append(({k: v.to(device) for k, v in batch.items()}, task_index.to(device)))
        return out

    def target_count(self, batch: dict[str, torch.Tensor]) -> int:
        labels = batch["labels"] if self.is_encoder_decoder else batch["labels"][:, 1:]
        return int((labels != IGNORE_INDEX).sum())


def _build_plan(encoded: dict[str, list[Any]], make_item: ItemMaker, config: TrainConfig,
                world: int) -> tuple[EpochPlan | SamplerPlan, Any, int]:
    """(data plan, sampler or None, total steps) - `plan.EpochPlan` without a sampler, else `plan.SamplerPlan`."""
    if config.sampler is None:
        plan = EpochPlan(encoded, make_item, batch_size=config.batch_size, grad_accum=config.grad_accum, world=world,
                         cap=config.cap, seed=config.seed, group_by_length=config.group_by_length)
        return plan, None, _total_steps(config, plan.steps_per_epoch)
    tasks = list(encoded)
    sizes = [len(encoded[t]) for t in tasks]
    per_step = config.batch_size * config.grad_accum * world
    total_steps = _total_steps(config, math.ceil(sum(min(n, config.cap or n) for n in sizes) / per_step))
    kwargs = {"total_steps": total_steps, **config.sampler_kwargs}
    sampler = make_sampler(config.sampler, sizes, seed=config.seed, cap=config.cap, task_names=tasks, **kwargs)
    return SamplerPlan(encoded, make_item, sampler, batch_size=config.batch_size, grad_accum=config.grad_accum,
                       world=world, seed=config.seed), sampler, total_steps


def _unsupervised_source(loaded: LoadedModel, model: Any, config: TrainConfig, text_source: Any,
                         n_tasks: int) -> UnsupervisedSource | None:
    if not config.unsupervised_every:
        return None
    return UnsupervisedSource(
        read_text_source(text_source), loaded.tokenizer, seed=config.seed, max_length=config.max_length,
        max_target_length=config.max_target_length, is_encoder_decoder=loaded.is_encoder_decoder,
        vocab_size=unwrap_peft(model).get_output_embeddings().weight.shape[0], task_index=n_tasks)


def _step_microbatches(step: int, plan: EpochPlan | SamplerPlan, unsupervised: UnsupervisedSource | None,
                       config: TrainConfig, world: int) -> list[list[Item]]:
    """Every process's micro-batches of optimizer step ``step``: unsupervised every k-th step, else the plan's."""
    k = config.unsupervised_every
    if unsupervised is not None and (step + 1) % k == 0:
        items = unsupervised.items((step + 1) // k - 1, config.batch_size * config.grad_accum * world)
        return group_by_length(items, config.batch_size)
    return plan.next_step(step)


def _forward_backward(accelerator: Accelerator, loss_module: Any, passes: list[tuple[dict[str, torch.Tensor], torch.Tensor]],
                      n_targets: int, n_names: int, autocast: AutocastFactory, device: torch.device) -> torch.Tensor:
    """Forward + backward of this process's passes of one step (gradient sync on the last only); returns the
    per-task (token-loss sum, token count) of the step, shape ``(2, n_names)``."""
    step_sums = torch.zeros((2, n_names), dtype=torch.float64, device=device)
    for i, (batch, task_index) in enumerate(passes):
        sync = contextlib.nullcontext() if i == len(passes) - 1 else accelerator.no_sync(loss_module)
        with sync:
            with autocast():
                token_losses, rows = loss_module(**batch)
            accelerator.backward(token_losses.sum() / n_targets)
        token_task = task_index[rows]
        step_sums[0].index_add_(0, token_task, token_losses.detach().double())
        step_sums[1].index_add_(0, token_task, torch.ones_like(token_losses, dtype=torch.float64))
    return step_sums


def _optimizer_step(accelerator: Accelerator, trainable: list[torch.Tensor], optimizer: Any, scheduler: Any,
                    config: TrainConfig) -> None:
    if config.max_grad_norm is not None:
        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _observe(sampler: Any, step_sums: torch.Tensor, step: int) -> None:
    """Feed each sampled task's mean loss of the step to the sampler (the unsupervised column never)."""
    for task_index, (total, count) in enumerate(zip(step_sums[0, :-1].tolist(), step_sums[1, :-1].tolist())):
        if count > 0:
            sampler.observe(task_index, total / count, step)


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
    tracking: Tracking | None = None,
) -> TrainResult:
    """Train ``loaded`` on ``data`` (task name -> formatted examples); see the module docstring.

    ``tracking``: where the trackers of ``config.log_with`` write (default: TensorBoard in ``out_dir/tensorboard``).
    """
    out_dir = Path(out_dir)
    final_dir, log_path = out_dir / ckpt.FINAL, out_dir / LOG_FILE
    set_seed(config.seed)
    model = _prepare_model(loaded, config)
    if ckpt.is_finished(final_dir):
        ckpt.load_weights(model, final_dir)
        loaded.refresh_fingerprint()
        return TrainResult.from_final(out_dir)
    if config.unsupervised_every and text_source is None:
        raise ValueError("config.unsupervised_every is set but no text_source was given")
    data, validation = _split_validation(data, validation, config)

    latest = ckpt.latest_checkpoint(out_dir)
    tracking = tracking or Tracking.for_out_dir(out_dir)
    trackers = tracking.accelerator_kwargs(resolve_trackers(config.log_with),
                                           start_step=0 if latest is None else ckpt.checkpoint_step(latest))
    accelerator = Accelerator(cpu=not _has_accelerator_device(), **trackers)
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
    else:
        warn_truncation(encoded, max_length=config.max_length, max_target_length=config.max_target_length,
                        is_encoder_decoder=loaded.is_encoder_decoder, where=f"training {out_dir.name!r}")
    plan, sampler, total_steps = _build_plan(encoded, make_item, config, world)
    unsupervised = _unsupervised_source(loaded, model, config, text_source, len(tasks))
    validation_items = None
    if validation:
        validation_items = {t: [make_item(ex, i, 0) for ex in exs]
                            for i, (t, exs) in enumerate(encode_tasks(loaded.tokenizer, validation).items())}

    optimizer = _optimizer(model, config)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup_count(config, total_steps),
                              num_training_steps=total_steps)
    stopper = EarlyStopping(config.stop_target_loss, config.stop_patience, config.stop_min_delta)
    start_step, rng = 0, None
    if latest is not None:
        ckpt.load_weights(model, latest)
        states, rng, trainer_state = ckpt.read_training_state(latest, rank)
        _check_same_config(trainer_state["config"], config, latest)
        if trainer_state["world"] != world:
            raise ValueError(f"cannot resume from {latest}: written by {trainer_state['world']} processes, "
                             f"now {world}; the data order depends on the number of processes")
        start_step = int(trainer_state["step"])
        plan.load_state_dict(trainer_state["plan"])
        stopper.load_state_dict(trainer_state.get("stopping", {}))
    loss_module = TargetLoss(model)
    loss_module, optimizer = accelerator.prepare(loss_module, optimizer)
    if latest is not None:
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
        if accelerator.is_main_process:
            truncate_log(log_path, start_step)
    batcher = _Batcher(loaded, config)
    device = accelerator.device
    autocast = autocast_for(config.autocast_dtype, device)
    tracking.start(accelerator, config)
    logger = TrainLogger(out_dir, enabled=accelerator.is_main_process, total_steps=total_steps, accelerator=accelerator,
                         start_step=start_step, progress=progress)
    names = tasks + [UNSUPERVISED]
    window = torch.zeros((2, len(names)), dtype=torch.float64)
    trainable = [p for p in loss_module.parameters() if p.requires_grad]
    if rng is not None:
        ckpt.restore_rng_state(rng)
    loss_module.train()
    done, stop_reason, best_weights = start_step, None, None
    try:
        for step in range(start_step, total_steps):
            microbatches = _step_microbatches(step, plan, unsupervised, config, world)
            passes = [p for items in rank_share(microbatches, rank, world) for p in batcher(items, device)]
            n_targets = max(1, sum(batcher.target_count(batch) for batch, _ in passes))
            step_sums = _forward_backward(accelerator, loss_module, passes, n_targets, len(names), autocast, device)
            _optimizer_step(accelerator, trainable, optimizer, scheduler, config)
            if world > 1:
                step_sums = accelerator.reduce(step_sums, reduction="sum")
            step_sums = step_sums.cpu()
            window += step_sums
            if sampler is not None:
                _observe(sampler, step_sums, step)
            done = step + 1
            if done % config.log_every == 0 or done == total_steps:
                logger.log(_train_record(done, window, names, scheduler, sampler, step))
                window.zero_()
            if validation_items and ((config.eval_every and done % config.eval_every == 0) or done == total_steps):
                task_loss = _validation_loss(loss_module, batcher, validation_items, config, device, autocast)
                mean_loss = sum(task_loss.values()) / len(task_loss)
                stop_reason = stopper.update(done, mean_loss)
                logger.log({"kind": "eval", "step": done, "loss": mean_loss, "task_loss": task_loss})
                if config.restore_best and stopper.best_step == done:
                    best_weights = [p.detach().clone() for p in trainable]
            if stop_reason is None and config.checkpoint_every and done % config.checkpoint_every == 0 and done < total_steps:
                _save_checkpoint(accelerator, ckpt.step_dir(out_dir, done), loss_module, optimizer, scheduler,
                                 {"step": done, "total_steps": total_steps, "world": world, "plan": plan.state_dict(),
                                  "stopping": stopper.state_dict(), "config": config.model_dump(mode="json")})
            logger.advance(done)
            if on_step is not None:
                on_step(done)
            if stop_reason is not None:
                break
    finally:
        logger.close()
    restored = best_weights is not None and stopper.best_step != done
    if restored:
        with torch.no_grad():
            for param, best in zip(trainable, best_weights):
                param.copy_(best)
    result = {"steps": done, "planned_steps": total_steps,
              "stop_reason": stop_reason or ("max_steps" if config.max_steps else "epochs"),
              "validation_loss": stopper.last_loss, "best_validation_loss": stopper.best_loss,
              "best_step": stopper.best_step, "weights_step": stopper.best_step if restored else done}
    _save_final(accelerator, final_dir, loss_module, result, gather=fsdp)
    loaded.model = accelerator.unwrap_model(loss_module).model
    loaded.refresh_fingerprint()
    return TrainResult(out_dir, final_dir, done, log_path, result["stop_reason"], stopper.last_loss,
                       stopper.best_loss, stopper.best_step)


RESUME_FREE = {"log_with"}  # config fields a resume may change: they do not touch the data order or the maths


def _check_same_config(saved: dict[str, Any], config: TrainConfig, where: Path) -> None:
    """Refuse to resume a checkpoint written under a different config (the data order would differ)."""
    current = config.model_dump(mode="json")
    changed = sorted(key for key in current.keys() | saved.keys()
                     if key not in RESUME_FREE and current.get(key) != saved.get(key))
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
                     device: torch.device, autocast: AutocastFactory) -> dict[str, float]:
    """Mean target-token loss per validation task (dropout off; every process computes all of it; a shared
    prompt prefix runs once per batch, as in training)."""
    loss_module.eval()
    losses = {}
    for task, task_items in items.items():
        total, count = 0.0, 0
        for start in range(0, len(task_items), config.batch_size):
            for batch, _ in batcher(task_items[start:start + config.batch_size], device):
                with autocast():
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


def _save_final(accelerator: Accelerator, final: Path, loss_module: Any, result: dict[str, Any], *, gather: bool) -> None:
    """Write ``final`` (weights + result.json); under FSDP the full state dict is gathered first (collective)."""
    state = None
    if gather:
        prefix = "model."
        state = {k.removeprefix(prefix): v for k, v in accelerator.get_state_dict(loss_module).items()}
    if accelerator.is_main_process:
        staging = ckpt.prepare_staging(final)
        ckpt.save_weights(accelerator.unwrap_model(loss_module).model, staging, state_dict=state)
        ckpt.write_json(staging / RESULT_FILE, result)
        ckpt.publish(staging, final)
    accelerator.wait_for_everyone()
