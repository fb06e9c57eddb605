"""In-context-learning loss: taskscope's `target_loss` vs a plain Hugging Face loop, same model and examples.

Workload: for each of ``--tasks`` SNI tasks (the sample in ../shared/data/sni), ``--per-task`` test instances in
the ICL format of the transfer study (definition + ``--k`` exemplars from the task's positive examples), one
reference each.  Methods, interleaved task by task:

* HF loop: one sequence at a time through the full ``...ForCausalLM`` (full-vocabulary logits at every
  position), mean NLL of the target tokens;
* taskscope without prefix sharing: batched, logits at target positions only;
* taskscope: the same, with the shared ICL context run once per task into a KV cache.

    PYTHONPATH=src python benchmarks/bench_eval_loss.py        # --model SPEC (default: embedded)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from taskscope.evaluate import target_loss
from taskscope.evaluate.icl import icl_format
from taskscope.models import load_model
from taskscope.tasks import format_task, load_suite

SNI_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sni"


@torch.no_grad()
def hf_loop(model, tokenizer, examples) -> list[float]:
    """Per example: prompt + target + eos through the full model, mean NLL over the target tokens."""
    losses = []
    for example in examples:
        prompt = tokenizer(example.prompt)["input_ids"]
        target = tokenizer(example.targets[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        logits = model(input_ids=torch.tensor([prompt + target])).logits[0, len(prompt) - 1:-1]
        losses.append(float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(target))))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--sni", default=str(SNI_DIR))
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--per-task", type=int, default=16)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    loaded = load_model(args.model)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    fmt = icl_format(args.k, with_definition=True)
    count = lambda text: len(tokenizer(text)["input_ids"])
    workload = []
    for task in load_suite(f"sni:{args.sni}"):
        examples = [e for e in format_task(task, fmt=fmt, count_tokens=count) if count(e.prompt) <= 512]
        if len(examples) >= args.per_task:
            workload.append(examples[:args.per_task])
        if len(workload) == args.tasks:
            break
    print(f"model {args.model}, {len(workload)} tasks x {args.per_task} ICL examples (definition + {args.k} "
          f"exemplars), torch threads {torch.get_num_threads()}")
    methods = {
        "HF loop": lambda ex: hf_loop(model, tokenizer, ex),
        "no prefix sharing": lambda ex: target_loss(model, tokenizer, ex, batch_size=args.batch_size,
                                                    reference="first", share_prefix=False),
        "taskscope": lambda ex: target_loss(model, tokenizer, ex, batch_size=args.batch_size, reference="first"),
    }
    methods["taskscope"](workload[0][:2])  # warm-up
    seconds = dict.fromkeys(methods, 0.0)
    results: dict[str, list[float]] = {m: [] for m in methods}
    for index, examples in enumerate(workload, 1):
        tokens = sum(count(e.prompt) for e in examples)
        line = []
        for name, fn in methods.items():
            start = time.perf_counter()
            results[name] += fn(examples)
            elapsed = time.perf_counter() - start
            seconds[name] += elapsed
            line.append(f"{name} {elapsed:6.2f} s")
        print(f"task {index} ({tokens} prompt tokens): " + " | ".join(line), flush=True)
    base = seconds["HF loop"]
    print("total: " + " | ".join(f"{name} {s:.1f} s ({base / s:.2f}x)" for name, s in seconds.items()))
    hf = torch.tensor(results["HF loop"])
    for name in ("no prefix sharing", "taskscope"):
        print(f"max |loss - HF loop| ({name}): {float((torch.tensor(results[name]) - hf).abs().max()):.2e}")


if __name__ == "__main__":
    main()
