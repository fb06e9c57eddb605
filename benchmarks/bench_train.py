"""Training throughput: taskscope's loop vs a plain Hugging Face `Trainer`, same model, LoRA, data, batch.

Both sides train the same LoRA adapters (``--lora-r``, alpha 2r, dropout 0.05, all linear layers) on the same
formatted examples (builtin tasks, ``task_id`` prompts) for one epoch of ``--steps`` batches of
``--batch-size``, from the same base weights:

* baseline: `Trainer` set up the usual way - prompt + target tokenised together, labels ``-100`` on the
  prompt, `DataCollatorForSeq2Seq` padding, the model's own forward (full-vocabulary logits at every position);
* ours: `taskscope.train.train` - logits at target positions only, length-grouped batches.

Throughput is real (non-padding) tokens of the epoch divided by the wall time (and, less sensitive to
other load on a shared machine, the process CPU time) of the whole training call.
The runs are interleaved (baseline, ours, ours, baseline, ...) to spread the noise of a shared machine;
the script prints every run and the ratio of the medians.

    PYTHONPATH=src python benchmarks/bench_train.py --steps 4   # --model SPEC (default: embedded) --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainingArguments,
)

from taskscope.models import add_lora, load_model
from taskscope.models.loaded import LoadedModel
from taskscope.tasks import load_suite
from taskscope.tasks.formats import PromptFormat, format_task
from taskscope.train import TrainConfig, train


def examples(n: int) -> list:
    """``n`` formatted examples drawn round-robin from the builtin tasks (short task-id prompts)."""
    tasks = list(load_suite("builtin", n_instances=max(4, n // 8 + 1), seed=0))
    per_task = [format_task(task, task.instances, PromptFormat(kind="task_id", add_task_name=True)) for task in tasks]
    chosen = []
    for i in range(n):
        task_examples = per_task[i % len(per_task)]
        chosen.append(task_examples[(i // len(per_task)) % len(task_examples)])
    return chosen


def load(spec: str) -> tuple[torch.nn.Module, object]:
    if spec == "embedded" or spec.startswith("tiny:"):
        loaded = load_model(spec)
        return loaded.model, loaded.tokenizer
    return AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32), AutoTokenizer.from_pretrained(spec)


def encode_for_trainer(tokenizer, data) -> list[dict]:
    rows = []
    for ex in data:
        prompt = tokenizer(ex.prompt, add_special_tokens=True)["input_ids"]
        target = tokenizer(ex.targets[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append({"input_ids": prompt + target, "attention_mask": [1] * (len(prompt) + len(target)),
                     "labels": [-100] * len(prompt) + target})
    return rows


def timed(work) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``work()``; CPU time is less sensitive to other load."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_trainer(base, tokenizer, rows, args) -> tuple[float, float]:
    model = add_lora(copy.deepcopy(base), r=args.lora_r, alpha=2 * args.lora_r, dropout=0.05)
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1, learning_rate=1e-4,
            lr_scheduler_type="linear", save_strategy="no", report_to=[], logging_steps=10**6, use_cpu=True,
            dataloader_num_workers=0, seed=0, disable_tqdm=True,
        )
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=model, args=training_args, train_dataset=rows, data_collator=collator)
        return timed(trainer.train)


def run_ours(base, tokenizer, data, args) -> tuple[float, float]:
    model = add_lora(copy.deepcopy(base), r=args.lora_r, alpha=2 * args.lora_r, dropout=0.05)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, spec=args.model, is_encoder_decoder=False,
                         num_layers=0, hidden_size=0, fingerprint="bench")
    config = TrainConfig(lr=1e-4, epochs=1, batch_size=args.batch_size, lora={"r": args.lora_r, "alpha": 2 * args.lora_r},
                         log_every=10**6, seed=0, max_length=512)
    with tempfile.TemporaryDirectory() as out:
        return timed(lambda: train(loaded, {"mixed": data}, config, out, progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded", help="model spec: 'embedded', a checkpoint dir or 'tiny:ARCH'")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    base, tokenizer = load(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = examples(args.steps * args.batch_size)
    rows = encode_for_trainer(tokenizer, data)
    tokens = sum(len(row["input_ids"]) for row in rows)
    targets = sum(sum(label != -100 for label in row["labels"]) for row in rows)
    print(f"model {args.model}: {len(rows)} examples, {tokens} tokens ({tokens / len(rows):.1f}/example, "
          f"{targets / len(rows):.1f} target), batch {args.batch_size}, LoRA r {args.lora_r}, "
          f"{torch.get_num_threads()} threads")
    wall_speed: dict[str, list[float]] = {"hf_trainer": [], "taskscope": []}
    cpu_speed: dict[str, list[float]] = {"hf_trainer": [], "taskscope": []}
    for round_index in range(args.rounds):
        order = ["hf_trainer", "taskscope"] if round_index % 2 == 0 else ["taskscope", "hf_trainer"]
        for name in order:
            wall, cpu = run_trainer(base, tokenizer, rows, args) if name == "hf_trainer" else run_ours(base, tokenizer, data, args)
            wall_speed[name].append(tokens / wall)
            cpu_speed[name].append(tokens / cpu)
            print(f"round {round_index}  {name:<11} wall {wall:7.2f} s {tokens / wall:8.1f} tok/s   "
                  f"cpu {cpu:7.2f} s {tokens / cpu:8.1f} tok/cpu-s", flush=True)
    for label, speeds in (("wall", wall_speed), ("cpu", cpu_speed)):
        hf, ours = statistics.median(speeds["hf_trainer"]), statistics.median(speeds["taskscope"])
        print(f"median {label} tok/s: hf_trainer {hf:.1f}, taskscope {ours:.1f}; "
              f"ratio taskscope / hf_trainer = {ours / hf:.2f}x")

if __name__ == "__main__":
    main()
