"""Extraction speed: taskscope's batched extractor vs a straightforward Hugging Face loop, same model and prompts.

Two baselines, both through the full ``...ForCausalLM`` with ``output_hidden_states=True`` under
``torch.no_grad``, keeping the last real token of every layer:

* ``HF loop``: one prompt at a time (the LM head makes full-vocabulary logits for every position);
* ``HF batched``: what a competent user writes: prompts sorted by length, cut into batches of ``--batch-size``,
  right-padded with an attention mask, the last real token read per row, and ``logits_to_keep=1`` so the LM
  head runs on one position per row (when the model accepts it; the benchmark says when it does not).

Ours: `taskscope.represent.extract_hidden_states` (length-sorted batches, right padding, block hooks, no LM head,
a token prefix shared by a task's prompts run once).

Two workloads of Tk-Instruct prompts (definition + 2 exemplars) from the SNI sample (synthetic prompts when it
is absent):

* ``per-task`` (what MOSSA does): ``--per-task`` prompts of each of ``--tasks`` tasks, one extraction call per
  task; the prompts of a task share their task context, which taskscope runs once (``share_prefix``);
* ``mixed``: ``--n`` prompts round-robin over all tasks, sorted by length and cut into chunks of
  ``--batch-size`` prompts, one call per chunk (little to share inside a chunk).

Per chunk the methods run interleaved (HF loop, taskscope, taskscope without prefix sharing) so load drift on a
shared machine hits all alike; each chunk prints tokens/s and ratios, each workload the overall ratios.
Agreement is checked on HF's convention: our layers 0..L-1 against HF's entries, our layer L after the model's
final norm against HF's last.

    PYTHONPATH=src python benchmarks/bench_extract.py            # --model SPEC (default: embedded) --workload per-task

On a shared machine set ``OMP_NUM_THREADS=1``: with more torch threads than free cores every small op waits on
its thread barrier and all methods slow down by several times, unevenly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from taskscope.models import load_model
from taskscope.represent import extract_hidden_states, find_backbone
from taskscope.tasks import PromptFormat, format_task, load_suite

def _sni_dir() -> Path:
    """``shared/data/sni`` beside the checkout (a fresh clone next to ``shared/``), else the workplace copy."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "sni"
    return beside if (beside / "INDEX.tsv").is_file() else Path("/work/shared/data/sni")


SNI_DIR = _sni_dir()


def sni_prompts(tokenizer, max_prompt_tokens: int) -> list[list[str]]:
    """Per SNI task, its Tk-Instruct prompts (definition + 2 exemplars) of at most ``max_prompt_tokens`` tokens."""
    suite = load_suite(f"sni:{SNI_DIR}")
    fmt = PromptFormat(kind="definition_exemplars", max_prompt_tokens=max_prompt_tokens)
    count = lambda text: len(tokenizer(text)["input_ids"])
    per_task = [[e.prompt for e in format_task(task, fmt=fmt, count_tokens=count) if count(e.prompt) <= max_prompt_tokens]
                for task in suite]
    return [prompts for prompts in per_task if prompts]


def synthetic_prompts(tasks: int, per_task: int) -> list[list[str]]:
    """Instruction-shaped prompts of varied length when the SNI sample is absent."""
    words = ["the", "model", "reads", "a", "sentence", "and", "decides", "whether", "its", "claim", "is", "supported", "by", "the", "passage"]
    return [[f"Definition: {' '.join(words[(t + j) % len(words)] for j in range(60))}.\n\nNow complete the following "
             f"example -\nInput: {' '.join(words[(i + j) % len(words)] for j in range(8 + 9 * (i % 5)))}\nOutput: "
             for i in range(per_task)] for t in range(tasks)]


def baseline(model, tokenizer, prompts: list[str]) -> torch.Tensor:
    """The plain loop: batch of 1, full model with logits, ``output_hidden_states=True``."""
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
            hidden = model(**encoded, output_hidden_states=True).hidden_states
            rows.append(torch.stack([h[0, -1] for h in hidden]).float().cpu())
    return torch.stack(rows, dim=1)


def batched_baseline(model, tokenizer, prompts: list[str], batch_size: int, keep_one_logit: bool) -> torch.Tensor:
    """The competent user's loop: length-sorted, right-padded batches, last real token, ``logits_to_keep=1``."""
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[torch.Tensor | None] = [None] * len(ids)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            longest = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for row, i in enumerate(batch):
                input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            kwargs = {"logits_to_keep": 1} if keep_one_logit else {}
            hidden = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                           output_hidden_states=True, **kwargs).hidden_states
            last = mask.sum(dim=1) - 1
            for row, i in enumerate(batch):
                out[i] = torch.stack([h[row, last[row]] for h in hidden]).float().cpu()
    return torch.stack(out, dim=1)


def keeps_one_logit(model, tokenizer) -> bool:
    """Try ``logits_to_keep=1`` once; without it the batched baseline computes every position's logits."""
    ids = tokenizer("probe", return_tensors="pt").to(model.device)
    try:
        with torch.no_grad():
            works = model(**ids, logits_to_keep=1).logits.shape[1] == 1
    except TypeError:
        works = False
    if not works:
        print("note: the model does not take logits_to_keep=1; the batched baseline computes all logits")
    return works


def max_relative_difference(ours: torch.Tensor, hf: torch.Tensor, final_norm=None) -> float:
    """Max over layers of max|ours - hf| / max|hf|; with ``final_norm`` ours is first mapped to HF's convention
    (final norm on the last layer; HF's own outputs already follow it)."""
    mapped = ours.clone()
    if final_norm is not None:
        with torch.no_grad():
            mapped[-1] = final_norm(ours[-1].to(final_norm.weight.dtype)).float()
    return max(float((mapped[l] - hf[l]).abs().max() / hf[l].abs().max()) for l in range(hf.shape[0]))


def compare(name: str, chunks: list[list[str]], model, tokenizer, batch_size: int, keep_one_logit: bool) -> None:
    """Time the HF loop and taskscope (with and without prefix sharing) chunk by chunk, interleaved."""
    methods = {
        "HF loop": lambda p: baseline(model, tokenizer, p),
        "HF batched": lambda p: batched_baseline(model, tokenizer, p, batch_size, keep_one_logit),
        "taskscope": lambda p: extract_hidden_states(model, tokenizer, p, batch_size=batch_size, progress=False),
        "no prefix sharing": lambda p: extract_hidden_states(model, tokenizer, p, batch_size=batch_size,
                                                             share_prefix=False, progress=False),
    }
    seconds = dict.fromkeys(methods, 0.0)
    outputs: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    total_tokens = 0
    print(f"\n[{name}] {len(chunks)} calls, {sum(map(len, chunks))} prompts")
    for index, prompts in enumerate(chunks, 1):
        tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts)
        total_tokens += tokens
        line = []
        for method, fn in methods.items():
            start = time.perf_counter()
            outputs[method].append(fn(prompts))
            elapsed = time.perf_counter() - start
            seconds[method] += elapsed
            line.append(f"{method} {tokens / elapsed:7.1f} tok/s")
        print(f"  call {index} ({len(prompts)} prompts, {tokens} tokens): " + " | ".join(line), flush=True)
    loop, batched = seconds["HF loop"], seconds["HF batched"]
    print(f"  total {total_tokens} tokens: " + " | ".join(f"{m} {total_tokens / s:.1f} tok/s ({s:.1f} s)"
                                                        for m, s in seconds.items()))
    for label, base in (("the HF loop", loop), ("HF batched", batched)):
        print(f"  speed-up over {label}: taskscope {base / seconds['taskscope']:.2f}x, without prefix sharing "
              f"{base / seconds['no prefix sharing']:.2f}x")
    final_norm = find_backbone(model).final_norm
    hf = torch.cat(outputs["HF loop"], dim=1)
    for method in ("HF batched", "taskscope", "no prefix sharing"):
        norm = None if method.startswith("HF") else final_norm
        print(f"  max relative difference to the HF loop ({method}): "
              f"{max_relative_difference(torch.cat(outputs[method], dim=1), hf, norm):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="model spec for taskscope.models.load_model")
    parser.add_argument("--workload", choices=["per-task", "mixed", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=4, help="per-task workload: number of tasks")
    parser.add_argument("--per-task", type=int, default=16, help="per-task workload: prompts per task")
    parser.add_argument("--n", type=int, default=64, help="mixed workload: prompts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-prompt-tokens", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    source = "SNI sample" if (SNI_DIR / "INDEX.tsv").is_file() else "synthetic"
    if source == "synthetic":
        print(f"note: no SNI sample at {SNI_DIR} (expected ../shared/data/sni beside the checkout): "
              f"falling back to synthetic prompts")
    keep_one = keeps_one_logit(model, tokenizer)
    per_task = sni_prompts(tokenizer, args.max_prompt_tokens) if source == "SNI sample" \
        else synthetic_prompts(max(args.tasks, 8), max(args.per_task, args.n // 8))
    print(f"model {args.model} on {args.device} ({args.dtype}), {source} prompts, torch threads {torch.get_num_threads()}")
    extract_hidden_states(model, tokenizer, per_task[0][:2], progress=False)  # warm-up both paths
    baseline(model, tokenizer, per_task[0][:2])
    batched_baseline(model, tokenizer, per_task[0][:2], args.batch_size, keep_one)
    if args.workload in ("per-task", "both"):
        chunks = [p[:args.per_task] for p in per_task if len(p) >= args.per_task][:args.tasks]
        compare("per-task", chunks, model, tokenizer, args.batch_size, keep_one)
    if args.workload in ("mixed", "both"):
        mixed = [p[i] for i in range(max(map(len, per_task))) for p in per_task if i < len(p)][:args.n]
        order = sorted(mixed, key=lambda text: -len(tokenizer(text)["input_ids"]))
        chunks = [order[s:s + args.batch_size] for s in range(0, len(order), args.batch_size)]
        compare("mixed", chunks, model, tokenizer, args.batch_size, keep_one)


if __name__ == "__main__":
    main()
