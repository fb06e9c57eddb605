"""Extraction speed: taskscope's batched extractor vs a straightforward Hugging Face loop, same model and prompts.

Baseline: one prompt at a time through the full ``...ForCausalLM`` with ``output_hidden_states=True`` under
``torch.no_grad`` (so the LM head makes full-vocabulary logits), keeping the last token of every layer.
Ours: `taskscope.represent.extract_hidden_states` (length-sorted batches, right padding, block hooks, no LM head).

The two run interleaved (baseline, ours, baseline, ours, ...) so load drift on a shared machine hits both;
each round prints tokens/s of both and their ratio, then the median ratio.  Agreement is checked on HF's
convention: our layers 0..L-1 against HF's entries, our layer L after the model's final norm against HF's last.

    PYTHONPATH=src python benchmarks/bench_extract.py --model /tmp/gemma/ckpt --n 64 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from taskscope.represent import extract_hidden_states, find_backbone
from taskscope.tasks import PromptFormat, format_task, load_suite

SNI_DIR = Path("/work/shared/data/sni")


def sni_prompts(n: int, tokenizer, max_prompt_tokens: int) -> list[str]:
    """``n`` Tk-Instruct prompts (definition + 2 exemplars) of at most ``max_prompt_tokens`` tokens (longer ones
    are skipped), round-robin over the SNI sample's tasks."""
    suite = load_suite(f"sni:{SNI_DIR}")
    fmt = PromptFormat(kind="definition_exemplars", max_prompt_tokens=max_prompt_tokens)
    count = lambda text: len(tokenizer(text)["input_ids"])  # noqa: E731
    per_task = [format_task(task, fmt=fmt, count_tokens=count) for task in suite]
    prompts = []
    for index in range(max(len(p) for p in per_task)):
        prompts += [p[index].prompt for p in per_task if index < len(p) and count(p[index].prompt) <= max_prompt_tokens]
    return prompts[:n]


def synthetic_prompts(n: int) -> list[str]:
    """Instruction-shaped prompts of varied length when the SNI sample is absent."""
    words = "the model reads a sentence and decides whether its claim is supported by the passage".split()
    return [f"Definition: answer the question.\n\nNow complete the following example -\nInput: "
            f"{' '.join(words[(i + j) % len(words)] for j in range(8 + 9 * (i % 13)))}\nOutput: " for i in range(n)]


def baseline(model, tokenizer, prompts: list[str]) -> torch.Tensor:
    """The plain loop: batch of 1, full model with logits, ``output_hidden_states=True``."""
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
            hidden = model(**encoded, output_hidden_states=True).hidden_states
            rows.append(torch.stack([h[0, -1] for h in hidden]).float().cpu())
    return torch.stack(rows, dim=1)


def max_relative_difference(ours: torch.Tensor, hf: torch.Tensor, final_norm) -> float:
    """Max over layers of max|ours - hf| / max|hf|, ours mapped to HF's convention (final norm on the last)."""
    mapped = ours.clone()
    with torch.no_grad():
        mapped[-1] = final_norm(ours[-1].to(final_norm.weight.dtype)).float()
    return max(float((mapped[l] - hf[l]).abs().max() / hf[l].abs().max()) for l in range(hf.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/gemma/ckpt")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-prompt-tokens", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).to(args.device).eval()
    source = "SNI sample" if (SNI_DIR / "INDEX.tsv").is_file() else "synthetic"
    prompts = sni_prompts(args.n, tokenizer, args.max_prompt_tokens) if source == "SNI sample" \
        else synthetic_prompts(args.n)
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    tokens = sum(lengths)
    print(f"model {args.model} on {args.device} ({args.dtype}), {len(prompts)} {source} prompts, {tokens} tokens "
          f"(min {min(lengths)}, median {int(statistics.median(lengths))}, max {max(lengths)}), "
          f"torch threads {torch.get_num_threads()}")

    extract_hidden_states(model, tokenizer, prompts[:2], progress=False)  # warm-up both paths
    baseline(model, tokenizer, prompts[:2])
    ratios = []
    for round_index in range(1, args.rounds + 1):
        start = time.perf_counter()
        reference = baseline(model, tokenizer, prompts)
        baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = extract_hidden_states(model, tokenizer, prompts, batch_size=args.batch_size, progress=False)
        ours_s = time.perf_counter() - start
        ratios.append(baseline_s / ours_s)
        print(f"round {round_index}: HF loop {tokens / baseline_s:8.1f} tok/s ({baseline_s:6.1f} s) | "
              f"taskscope {tokens / ours_s:8.1f} tok/s ({ours_s:6.1f} s) | speed-up {ratios[-1]:.2f}x")
    difference = max_relative_difference(ours, reference, find_backbone(model).final_norm)
    print(f"median speed-up {statistics.median(ratios):.2f}x over {len(ratios)} rounds (goal >= 5x); "
          f"max relative difference of the states {difference:.2e}")


if __name__ == "__main__":
    main()
