"""Extraction speed: taskscope's batched extractor vs a straightforward Hugging Face loop, same model and prompts.

Baseline: one prompt at a time through the full ``...ForCausalLM`` with ``output_hidden_states=True`` under
``torch.no_grad`` (so the LM head makes full-vocabulary logits), keeping the last token of every layer.
Ours: `taskscope.represent.extract_hidden_states` (length-sorted batches, right padding, block hooks, no LM head).

The prompts are sorted by length and cut into chunks of ``--batches-per-chunk`` batches; the two methods run
interleaved chunk by chunk (baseline, ours, baseline, ours, ...) so load drift on a shared machine hits both.
Each chunk prints tokens/s of both and their ratio; the end prints the overall and median chunk ratios.  Agreement is checked on HF's
convention: our layers 0..L-1 against HF's entries, our layer L after the model's final norm against HF's last.

    PYTHONPATH=src python benchmarks/bench_extract.py --n 64            # --model SPEC (default: embedded)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from taskscope.models import load_model
from taskscope.represent import extract_hidden_states, find_backbone
from taskscope.tasks import PromptFormat, format_task, load_suite

SNI_DIR = Path("/work/shared/data/sni")


def sni_prompts(n: int, tokenizer, max_prompt_tokens: int) -> list[str]:
    """``n`` Tk-Instruct prompts (definition + 2 exemplars) of at most ``max_prompt_tokens`` tokens (longer ones
    are skipped), round-robin over the SNI sample's tasks."""
    suite = load_suite(f"sni:{SNI_DIR}")
    fmt = PromptFormat(kind="definition_exemplars", max_prompt_tokens=max_prompt_tokens)
    count = lambda text: len(tokenizer(text)["input_ids"])
    per_task = [format_task(task, fmt=fmt, count_tokens=count) for task in suite]
    prompts = []
    for index in range(max(len(p) for p in per_task)):
        prompts += [p[index].prompt for p in per_task if index < len(p) and count(p[index].prompt) <= max_prompt_tokens]
    return prompts[:n]


def synthetic_prompts(n: int) -> list[str]:
    """Instruction-shaped prompts of varied length when the SNI sample is absent."""
    words = ["the", "model", "reads", "a", "sentence", "and", "decides", "whether", "its", "claim", "is", "supported", "by", "the", "passage"]
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
    parser.add_argument("--model", default="embedded", help="model spec for taskscope.models.load_model")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches-per-chunk", type=int, default=1)
    parser.add_argument("--max-prompt-tokens", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
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
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    chunk = args.batch_size * args.batches_per_chunk
    baseline_s = ours_s = 0.0
    ratios, reference, ours = [], [], []
    for start_index in range(0, len(order), chunk):
        chunk_prompts = [prompts[i] for i in order[start_index:start_index + chunk]]
        chunk_tokens = sum(lengths[i] for i in order[start_index:start_index + chunk])
        start = time.perf_counter()
        reference.append(baseline(model, tokenizer, chunk_prompts))
        chunk_baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        ours.append(extract_hidden_states(model, tokenizer, chunk_prompts, batch_size=args.batch_size,
                                          progress=False))
        chunk_ours_s = time.perf_counter() - start
        baseline_s, ours_s = baseline_s + chunk_baseline_s, ours_s + chunk_ours_s
        ratios.append(chunk_baseline_s / chunk_ours_s)
        print(f"chunk {len(ratios)} ({len(chunk_prompts)} prompts, {chunk_tokens} tokens): "
              f"HF loop {chunk_tokens / chunk_baseline_s:7.1f} tok/s | taskscope {chunk_tokens / chunk_ours_s:7.1f} tok/s"
              f" | speed-up {ratios[-1]:.2f}x", flush=True)
    difference = max_relative_difference(torch.cat(ours, dim=1), torch.cat(reference, dim=1),
                                         find_backbone(model).final_norm)
    print(f"total: HF loop {tokens / baseline_s:.1f} tok/s ({baseline_s:.1f} s), taskscope {tokens / ours_s:.1f} tok/s "
          f"({ours_s:.1f} s); speed-up {baseline_s / ours_s:.2f}x overall, chunk ratios median "
          f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x); goal >= 5x")
    print(f"max relative difference of the states: {difference:.2e}")

if __name__ == "__main__":
    main()
