"""Instruction-tuning prompts are budgeted like the evaluation's: exemplars go first, the definition and the
query are never cut silently, and any cut left to `fit_lengths` is warned about with counts."""

from __future__ import annotations

import warnings

import pytest

from taskscope.models.tiny import byte_tokenizer
from taskscope.pipeline.config import load_config
from taskscope.pipeline.stages import StageContext
from taskscope.studies.common.tasks import examples, read_tasks
from taskscope.studies.transfer.tasks import run_tasks
from taskscope.tasks.builtin import load_builtin
from taskscope.tasks.formats import FormattedExample, PromptFormat, PromptTruncationWarning, tk_punctuate
from taskscope.train.data import encode_tasks, fit_lengths, prompt_token_budget, truncation_counts, warn_truncation


def _encoded(prompt: str, target: str = "yes"):
    return encode_tasks(byte_tokenizer(), {"t": [FormattedExample("t", "i0", prompt, (target,), 0)]})


def test_fit_lengths_cuts_are_counted_and_warned_never_silent() -> None:
    encoded = _encoded("Definition: keep me. " + "x " * 40 + "Input: q")
    with pytest.warns(PromptTruncationWarning, match=r"1 of 1 prompts cut from the left.*tasks \['t'\]"):
        counts = warn_truncation(encoded, max_length=40, max_target_length=8, is_encoder_decoder=False)
    assert counts == {"t": {"prompts": 1, "targets": 0, "examples": 1}}
    item = fit_lengths(encoded["t"][0], encoded["t"][0].target_ids[0], task_index=0, max_length=40,
                       max_target_length=8, truncation="truncate", is_encoder_decoder=False)
    assert len(item) <= 40  # the cut the warning announced really happens
    long_target = _encoded("short", target="y" * 20)
    assert truncation_counts(long_target, max_length=64, max_target_length=8, is_encoder_decoder=True) == {
        "t": {"prompts": 0, "targets": 1, "examples": 1}}


def test_a_prompt_within_prompt_token_budget_is_never_cut() -> None:
    budget = prompt_token_budget(48, 8)
    prompt = "p" * (budget - 1)  # + BOS = budget tokens
    encoded = _encoded(prompt, target="z" * 30)  # target longer than max_target_length: cut to 8
    for enc_dec in (False, True):
        counts = truncation_counts(encoded, max_length=48, max_target_length=8, is_encoder_decoder=enc_dec)
        assert counts["t"]["prompts"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_truncation(_encoded(prompt), max_length=48, max_target_length=8, is_encoder_decoder=False) == {}


def test_seen_task_prompts_drop_exemplars_first_and_keep_definition_and_query(tmp_path) -> None:
    """Fails on the old code: seen prompts were formatted without a budget and cut from the left in training."""
    base = load_config("transfer_tiny")
    config = base.model_copy(update={
        "prompt_format": PromptFormat(kind="definition_exemplars", n_exemplars=3),
        "instruction_tuning": base.instruction_tuning.model_copy(update={"max_length": 420, "max_target_length": 16}),
    })
    budget = config.seen_prompt_budget()
    assert budget == prompt_token_budget(420, 16)  # tighter than the evaluation's
    ctx = StageContext(config=config, out_dir=tmp_path, inputs={}, executor=None, run_dir=tmp_path)
    with pytest.warns(PromptTruncationWarning, match="exemplars dropped"):
        run_tasks(ctx)
    seen = read_tasks(tmp_path)["seen"]
    tasks = {t.name: t for t in load_builtin(**config.tasks.options)}
    tokenizer = byte_tokenizer()
    dropped = 0
    for name, info in seen.items():
        task = tasks[name]
        by_id = {inst.id: inst for inst in task.instances}
        for part in ("train", "validation", "test"):
            for record in info[part]:
                n_tokens = len(tokenizer(record["prompt"], add_special_tokens=True)["input_ids"])
                assert n_tokens <= budget, (name, part, n_tokens)
                assert record["cut_words"] == 0
                assert tk_punctuate(task.definition) in record["prompt"]  # the definition is whole
                assert record["prompt"].rstrip().endswith("Output:")
                assert tk_punctuate(task.render(by_id[record["instance_id"]]).input) in record["prompt"]
                dropped += record["dropped_exemplars"]
    assert dropped > 0  # the budget bit: exemplars, not the definition, paid for it
    train = {name: examples(info["train"]) for name, info in seen.items()}
    assert truncation_counts(encode_tasks(tokenizer, train), max_length=420, max_target_length=16,
                             is_encoder_decoder=False) == {}
