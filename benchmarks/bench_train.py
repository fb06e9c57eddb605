"""Control training: taskscope's loop vs a plain Hugging Face `Trainer` on a real definition-format SNI task.

Workload: one SNI task from the sample (``../shared/data/sni`` next to the checkout, else
``/work/shared/data/sni``), Tk-Instruct definition prompts (`PromptFormat(kind="definition")`), the first
``--val`` instances as validation data and the next ``--steps-to-loss * --batch-size`` as training data.
Both sides train LoRA r ``--lora-r`` (alpha 2r, dropout 0 so the two loss curves can be compared step by
step, all linear layers, the same initial adapter weights) on the embedded model with AdamW, constant
learning rate ``--lr``, gradient clipping 1.0, batch ``--batch-size``, in the same data order (taskscope's
seeded epoch permutation, given to the `Trainer` through a sequential sampler):

* baseline: `Trainer` set up the usual way - prompt + target tokenised together, labels ``-100`` on the
  prompt, `DataCollatorForSeq2Seq` padding, the model's own forward (full-vocabulary logits everywhere),
  ``bf16=True`` for the bfloat16 rows;
* ours: `taskscope.train.train` - the task definition shared by a batch's prompts runs once per batch
  (`train/shared_prefix.py`), logits at target positions only, ``autocast_dtype="bfloat16"`` for bf16.

Measured, per dtype (float32, bfloat16), in this order, after one untimed run of each side up to its first
validation (``--eval-every`` steps; the first training and evaluation calls in a process pay one-off costs -
kernel set-up, lazy imports, allocator growth - that would otherwise land on whichever side runs first):

(a) tokens/s: ``--steps`` optimizer steps without validation; real (non-padding) prompt + target tokens
    divided by the wall time of the training call (and its process CPU time, less sensitive to other load); the per-step training losses of both sides are printed
    with their largest difference (equal curves up to float rounding);
(b) time to a learned control: train until the validation loss (mean target-token loss over the ``--val``
    examples, evaluated every ``--eval-every`` steps; the `Trainer` evaluates them as one batch so its
    ``eval_loss`` is the same token mean) is at most ``--target-loss``, at most ``--steps-to-loss`` steps;
    wall time of the training call including its evaluations.

    PYTHONPATH=src python benchmarks/bench_train.py          # --task NAME --steps 3 --steps-to-loss 10 ...

The machine this runs on may be shared: the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import SequentialSampler
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

from taskscope.models import add_lora, load_model
from taskscope.models.loaded import LoadedModel
from taskscope.tasks import format_task, load_suite
from taskscope.tasks.formats import PromptFormat
from taskscope.tasks.splits import seed_from
from taskscope.train import TrainConfig, train
from taskscope.train.logging import read_log

CHECKOUT = Path(__file__).resolve().parents[1]
SNI_CANDIDATES = (CHECKOUT.parent / "shared" / "data" / "sni", Path("/work/shared/data/sni"))
SEED = 0


def sni_dir() -> Path:
    for candidate in SNI_CANDIDATES:
        if (candidate / "INDEX.tsv").is_file():
            return candidate
    raise SystemExit(f"no SNI sample found in {', '.join(map(str, SNI_CANDIDATES))}; pass --sni")


def task_examples(sni: Path, name: str) -> list:
    """The task's definition-format examples, each with its first reference only (what the baseline trains on)."""
    for task in load_suite(f"sni:{sni}"):
        if task.name == name:
            return [dataclasses.replace(ex, targets=ex.targets[:1])
                    for ex in format_task(task, task.instances, PromptFormat(kind="definition"))]
    raise SystemExit(f"task {name!r} is not in {sni}")


def our_order(n: int) -> list[int]:
    """The example order of taskscope's first epoch (`plan.EpochPlan`, ``group_by_length=False``)."""
    return np.random.default_rng(seed_from(SEED, "epoch", 0)).permutation(n).tolist()


def trainer_rows(tokenizer, data) -> list[dict]:
    rows = []
    for ex in data:
        prompt = tokenizer(ex.prompt, add_special_tokens=True)["input_ids"]
        target = tokenizer(ex.targets[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append({"input_ids": prompt + target, "attention_mask": [1] * (len(prompt) + len(target)),
                     "labels": [-100] * len(prompt) + target})
    return rows


class OrderedTrainer(Trainer):
    """A `Trainer` that reads its training set in the given order (so both sides see the same batches)."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


class StopAtLoss(TrainerCallback):
    def __init__(self, target: float) -> None:
        self.target, self.evals = target, []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evals.append((state.global_step, metrics["eval_loss"]))
        if metrics["eval_loss"] <= self.target:
            control.should_training_stop = True


def lora_copy(base, r: int):
    torch.manual_seed(SEED)   # the same initial adapters on both sides
    return add_lora(copy.deepcopy(base), r=r, alpha=2 * r, dropout=0.0)


def run_trainer(base, tokenizer, train_rows, val_rows, args, *, bf16: bool, steps: int, target: float | None):
    model = lora_copy(base, args.lora_r)
    stopper = StopAtLoss(target) if target is not None else None
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=len(val_rows),
            max_steps=steps, learning_rate=args.lr, lr_scheduler_type="constant", max_grad_norm=1.0,
            weight_decay=0.0, save_strategy="no", report_to=[], logging_steps=1, use_cpu=True, bf16=bf16,
            dataloader_num_workers=0, seed=SEED, disable_tqdm=True, prediction_loss_only=True,
            eval_strategy="steps" if target is not None else "no", eval_steps=args.eval_every)
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, padding=True, label_pad_token_id=-100)
        trainer = OrderedTrainer(model=model, args=training_args, train_dataset=train_rows,
                                 eval_dataset=val_rows if target is not None else None, data_collator=collator,
                                 callbacks=[stopper] if stopper else None)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r and "eval_loss" not in r]
    return (wall, cpu), losses, (stopper.evals if stopper else []), trainer.state.global_step


def run_ours(base, tokenizer, data, val, args, *, bf16: bool, steps: int, target: float | None):
    model = lora_copy(base, args.lora_r)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, spec=args.model, is_encoder_decoder=False,
                         num_layers=0, hidden_size=0, fingerprint="bench")
    config = TrainConfig(
        lr=args.lr, max_steps=steps, batch_size=args.batch_size, schedule="constant", max_grad_norm=1.0,
        lora={"r": args.lora_r, "alpha": 2 * args.lora_r, "dropout": 0.0}, group_by_length=False, log_every=1,
        seed=SEED, max_length=1024, autocast_dtype="bfloat16" if bf16 else None,
        eval_every=args.eval_every if target is not None else 0, stop_target_loss=target)
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        result = train(loaded, {"task": data}, config, out, validation={"task": val} if target is not None else None,
                       progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        records = read_log(Path(out) / "log.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    evals = [(r["step"], r["loss"]) for r in records if r["kind"] == "eval"]
    return (wall, cpu), losses, evals, result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sni", type=Path, default=None)
    parser.add_argument("--task", default="task1212_atomic_classification_hasproperty")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="steps of the tokens/s runs")
    parser.add_argument("--steps-to-loss", type=int, default=12, help="step cap of the time-to-loss runs")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--target-loss", type=float, default=0.5)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--model", default="embedded", help="'embedded', or 'tiny:llama' for a smoke test")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}; {torch.get_num_threads()} threads")
    examples = task_examples(args.sni or sni_dir(), args.task)
    val, pool = examples[:args.val], examples[args.val:]
    n_train = min(len(pool), args.steps_to_loss * args.batch_size)
    speed_n = args.steps * args.batch_size
    train_data = pool[:n_train]
    loaded = load_model(args.model)
    base, tokenizer = loaded.model, loaded.tokenizer
    rows = trainer_rows(tokenizer, train_data)
    loss_rows = [rows[i] for i in our_order(n_train)]     # the order taskscope's epoch takes them in
    speed_rows = [rows[i] for i in our_order(speed_n)]    # (a) trains on the first speed_n examples
    val_rows = trainer_rows(tokenizer, val)
    speed_tokens = sum(len(r["input_ids"]) for r in speed_rows)
    lengths = [len(r["input_ids"]) for r in rows]
    targets = sum(sum(label != -100 for label in r["labels"]) for r in rows) / len(rows)
    print(f"task {args.task}: {len(train_data)} training examples, {np.mean(lengths):.0f} tokens/example "
          f"({targets:.1f} target), {args.val} validation; batch {args.batch_size}, LoRA r {args.lora_r}, lr {args.lr}")

    for dtype in args.dtypes.split(","):
        bf16 = dtype == "bfloat16"
        # warm-up: one untimed run of each side up to its first validation
        run_trainer(base, tokenizer, loss_rows, val_rows, args, bf16=bf16, steps=args.eval_every, target=args.target_loss)
        run_ours(base, tokenizer, train_data, val, args, bf16=bf16, steps=args.eval_every, target=args.target_loss)
        # (a) tokens/s over the first `steps` steps (the same batches on both sides)
        hf_wall, hf_losses, _, _ = run_trainer(base, tokenizer, speed_rows, val_rows, args, bf16=bf16,
                                               steps=args.steps, target=None)
        ours_wall, ours_losses, _, _ = run_ours(base, tokenizer, train_data[:speed_n], val, args, bf16=bf16,
                                                steps=args.steps, target=None)
        diff = max(abs(a - b) for a, b in zip(hf_losses, ours_losses))
        print(f"[{dtype}] (a) tokens/s: hf_trainer {speed_tokens / hf_wall[0]:.1f} ({hf_wall[0]:.1f} s wall, "
              f"{hf_wall[1]:.1f} s cpu), taskscope {speed_tokens / ours_wall[0]:.1f} ({ours_wall[0]:.1f} s wall, "
              f"{ours_wall[1]:.1f} s cpu); ratio taskscope / hf_trainer = {hf_wall[0] / ours_wall[0]:.2f}x wall, "
              f"{hf_wall[1] / ours_wall[1]:.2f}x cpu", flush=True)
        print(f"[{dtype}]     step losses hf {[round(x, 4) for x in hf_losses]}  "
              f"ours {[round(x, 4) for x in ours_losses]}  max |diff| {diff:.2e}", flush=True)
        # (b) wall time until the validation loss reaches the target
        hf_wall, _, hf_evals, hf_steps = run_trainer(base, tokenizer, loss_rows, val_rows, args, bf16=bf16,
                                                     steps=args.steps_to_loss, target=args.target_loss)
        ours_wall, _, ours_evals, ours_steps = run_ours(base, tokenizer, train_data, val, args, bf16=bf16,
                                                        steps=args.steps_to_loss, target=args.target_loss)
        hf_hit = bool(hf_evals) and hf_evals[-1][1] <= args.target_loss
        ours_hit = bool(ours_evals) and ours_evals[-1][1] <= args.target_loss
        print(f"[{dtype}] (b) time to validation loss <= {args.target_loss}: hf_trainer {hf_wall[0]:.1f} s wall "
              f"{hf_wall[1]:.1f} s cpu ({hf_steps} steps, {'reached' if hf_hit else 'NOT reached'}), taskscope "
              f"{ours_wall[0]:.1f} s wall {ours_wall[1]:.1f} s cpu ({ours_steps} steps, "
              f"{'reached' if ours_hit else 'NOT reached'}); ratio hf_trainer / taskscope = "
              f"{hf_wall[0] / ours_wall[0]:.2f}x wall, {hf_wall[1] / ours_wall[1]:.2f}x cpu", flush=True)
        print(f"[{dtype}]     evals hf {[(s, round(v, 4)) for s, v in hf_evals]}  "
              f"ours {[(s, round(v, 4)) for s, v in ours_evals]}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
