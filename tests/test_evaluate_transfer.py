"""In-context and few-shot (LoRA) evaluation on a tiny model: exemplar choice, overlap refusal, caching."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from taskscope.evaluate import (
    EvalCache,
    EvalSettings,
    ExemplarOverlapError,
    choose_exemplars,
    evaluate_fewshot,
    evaluate_icl,
    fewshot_instances,
)
from taskscope.models import tiny_model
from taskscope.tasks import Example, Instance, PromptFormat, Task
from taskscope.train import TrainConfig

SETTINGS = EvalSettings(max_new_tokens=3, batch_size=8)


def make_task(n: int = 12) -> Task:
    return Task(
        name="toy_copy",
        instances=tuple(Instance(id=str(i), input=f"w{i}", outputs=(f"w{i}",)) for i in range(n)),
        clusters=("copying",),
        definition="Repeat the input",
        positive_examples=(Example("p1", "p1"), Example("p2", "p2"), Example("p3", "p3"), Example("p4", "p4")),
    )


@pytest.fixture(scope="module")
def loaded():
    return tiny_model("llama", n_layers=1, hidden_size=32, seed=1)


def test_choose_exemplars_takes_first_positives_or_a_seeded_pool_draw() -> None:
    task = make_task()
    assert [e.input for e in choose_exemplars(task, 3)] == ["p1", "p2", "p3"]
    pool = task.instances[:8]
    draw = choose_exemplars(task, 3, pool=pool, seed=5)
    assert draw == choose_exemplars(task, 3, pool=pool, seed=5)
    assert len({inst.id for inst in draw}) == 3 and {inst.id for inst in draw} <= {inst.id for inst in pool}
    assert any(choose_exemplars(task, 3, pool=pool, seed=s) != draw for s in range(6, 12))
    with pytest.raises(ValueError, match="toy_copy.*5 exemplars.*4"):
        choose_exemplars(task, 5)


def test_icl_prompts_hold_k_exemplars_and_the_definition_switch(loaded) -> None:
    task = make_task()
    test = task.instances[8:]
    with_definition = evaluate_icl(loaded, task, test, k=2, pool=task.instances[:8], settings=SETTINGS)
    assert len(with_definition) == 4
    assert set(with_definition.columns) >= {"task", "instance_id", "prediction", "rouge_l", "exact_match", "loss", "k"}
    assert with_definition["instance_id"].tolist() == ["8", "9", "10", "11"]
    from taskscope.evaluate.icl import icl_format
    from taskscope.tasks import format_instance

    exemplars = choose_exemplars(task, 2, pool=task.instances[:8])
    prompt = format_instance(task, test[0], icl_format(2, True), exemplars=exemplars).prompt
    assert prompt.count("Positive Example") == 2 and "Definition: Repeat the input." in prompt
    bare = format_instance(task, test[0], icl_format(2, False), exemplars=exemplars).prompt
    assert "Definition" not in bare and bare.count("Positive Example") == 2
    without = evaluate_icl(loaded, task, test, k=2, pool=task.instances[:8], with_definition=False, settings=SETTINGS)
    assert without["loss"].tolist() != with_definition["loss"].tolist()  # the context changes what the model sees


def test_icl_refuses_exemplars_that_are_test_instances(loaded) -> None:
    task = make_task()
    with pytest.raises(ExemplarOverlapError, match="toy_copy.*instance ids"):
        evaluate_icl(loaded, task, task.instances[:4], k=3, pool=task.instances[:3], settings=SETTINGS)
    from taskscope.evaluate.icl import check_disjoint

    leaky = Task(name="leaky", instances=(Instance("0", "p2", ("p2",)),),
                 positive_examples=(Example("p2", "p2"), Example("p3", "p3")))
    with pytest.raises(ExemplarOverlapError, match="leaky.*inputs"):
        check_disjoint(leaky, list(leaky.positive_examples), leaky.instances)
    # a positive example that repeats a test input is skipped, the next one is used
    assert [e.input for e in choose_exemplars(leaky, 1, avoid=leaky.instances)] == ["p3"]
    with pytest.raises(ValueError, match="leaky.*2 exemplars.*not among the test inputs hold only 1"):
        evaluate_icl(loaded, leaky, leaky.instances, k=2, settings=SETTINGS)


def test_fewshot_subsets_are_nested_and_seeded() -> None:
    task = make_task()
    pool = task.instances[:8]
    assert fewshot_instances(task, pool, 4, seed=0)[:2] == fewshot_instances(task, pool, 2, seed=0)
    assert fewshot_instances(task, pool, 8, seed=0) != fewshot_instances(task, pool, 8, seed=1)
    with pytest.raises(ValueError, match="toy_copy.*9 shots.*8"):
        fewshot_instances(task, pool, 9, seed=0)


def test_fewshot_transfer_trains_lora_copies_and_caches_results(loaded, tmp_path: Path, monkeypatch) -> None:
    task = make_task()
    pool, test = task.instances[:8], task.instances[8:11]
    fingerprint = loaded.fingerprint
    config = TrainConfig(epochs=2, batch_size=4, lr=1e-2, max_length=128, max_target_length=16)
    cache = EvalCache(tmp_path / "cache")
    kwargs = {"out_root": tmp_path / "runs", "shots": (0, 4), "seeds": (0, 1), "train_config": config,
              "settings": SETTINGS, "fmt": PromptFormat(kind="definition"), "cache": cache}
    frame = evaluate_fewshot(loaded, task, pool, test, **kwargs)
    assert loaded.fingerprint == fingerprint and not hasattr(loaded.model, "peft_config")  # base left unchanged
    assert len(frame) == 2 * 2 * 3
    assert sorted(set(zip(frame.shots, frame.seed))) == [(0, 0), (0, 1), (4, 0), (4, 1)]
    zero = frame[frame.shots == 0]
    assert zero[zero.seed == 0]["loss"].tolist() == zero[zero.seed == 1]["loss"].tolist()
    trained = frame[frame.shots == 4]
    assert trained[trained.seed == 0]["loss"].tolist() != zero[zero.seed == 0]["loss"].tolist()
    assert (tmp_path / "runs" / "toy_copy" / "shots-4" / "seed-1" / "final").is_dir()
    assert set(frame.context) == {"definition"}

    import taskscope.evaluate.fewshot as fewshot_module

    def refuse(*args, **kwargs):
        raise AssertionError("retrained despite a cached result")

    monkeypatch.setattr(fewshot_module, "train_fewshot", refuse)
    again = evaluate_fewshot(loaded, task, pool, test, **kwargs)
    assert again["loss"].tolist() == frame["loss"].tolist()


def test_fewshot_refuses_a_pool_overlapping_the_test_set(loaded, tmp_path: Path) -> None:
    task = make_task()
    with pytest.raises(ExemplarOverlapError, match="toy_copy"):
        evaluate_fewshot(loaded, task, task.instances[:6], task.instances[5:8], out_root=tmp_path, shots=(0,),
                         seeds=(0,), settings=SETTINGS)


# ---------------------------------------------------------------- issue 16: budgets, formats, k
def test_icl_budget_keeps_the_definition_so_it_changes_the_loss(loaded) -> None:
    """Over-long prompts used to keep their last tokens: the definition was cut and ICL with and without it
    scored the same.  Now exemplars are dropped first, with a warning, and the definition stays."""
    from taskscope.tasks.formats import PromptTruncationWarning

    task = replace(make_task(), **{"definition": " ".join(["Repeat the input word exactly"] * 2),
                                          "positive_examples": tuple(Example(f"p{i} " * 20, f"p{i}") for i in range(3))})
    settings = EvalSettings(max_new_tokens=3, batch_size=8, max_length=240, max_target_length=8, generate=False)
    test = list(task.instances[:3])
    with pytest.warns(PromptTruncationWarning, match="exemplars dropped"):
        with_def = evaluate_icl(loaded, task, test, k=3, with_definition=True, settings=settings)
    without = evaluate_icl(loaded, task, test, k=3, with_definition=False, settings=settings)
    assert (with_def["dropped_exemplars"] > 0).all() and (with_def["cut_words"] == 0).all()
    assert not with_def["loss"].round(6).equals(without["loss"].round(6))


def test_icl_uses_a_named_format_and_k(loaded) -> None:
    from taskscope.evaluate.icl import icl_format
    from taskscope.tasks.formats import format_instance, named_format

    task = make_task()
    fmt = icl_format(3, False, named_format("mueller_context"))
    prompt = format_instance(task, task.instances[0], fmt).prompt
    assert prompt == "input: p1\noutput: p1\n\ninput: p2\noutput: p2\n\ninput: p3\noutput: p3\n\ninput: w0"
    frame = evaluate_icl(loaded, task, list(task.instances[:2]), k=2, fmt=named_format("mueller_context"),
                         with_definition=False, settings=SETTINGS)
    assert (frame["k"] == 2).all() and (frame["dropped_exemplars"] == 0).all()


def test_study_defaults_exemplars_from_positive_examples_and_k_3_everywhere() -> None:
    from taskscope.studies.transfer.config import TransferConfig

    config = TransferConfig(fewshot={"contexts": ["mueller_context"]}, prompt_format={"format": "mueller_context"},
                            icl={"format": "mueller_context"})
    assert config.icl.exemplars == "positive_examples" and config.icl.k == 3
    assert config.fewshot.k == 3 and config.prompt_format.n_exemplars == 3
    assert TransferConfig(prompt_format={"kind": "exemplars"}).prompt_format.n_exemplars == 3
    with pytest.raises(ValueError, match="unknown context / prompt format 'fig5'"):
        TransferConfig(fewshot={"contexts": ["fig5"]})
