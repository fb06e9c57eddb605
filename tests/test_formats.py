"""Prompt formats: golden Tk-Instruct strings, the token budget, template policies, token labels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.tasks import Example, Instance, PromptFormat, Task, Template, format_instance, format_task, label_tokens
from taskscope.tasks.formats import tk_punctuate

TOY = Task(
    name="task7_toy",
    definition="Say whether the sentence is happy or sad",
    positive_examples=(Example("I won", "happy", "Winning is good"), Example("I lost.", "sad", "Losing is bad."),
                       Example("Rain?", "sad!")),
    negative_examples=(Example("I lost it ", "happy", "Wrong label"),),
    instances=(Instance("q0", "  the sun shines ", ("happy", "glad")), Instance("q1", "it rains!", ("sad",))),
    clusters=("Sentiment Analysis",),
)

GOLDEN_TK = (
    "task7_toy. Definition: Say whether the sentence is happy or sad.\n\n"
    " Positive Example 1 -\nInput: I won.\n Output: happy.\n\n"
    " Positive Example 2 -\nInput: I lost.\n Output: sad.\n\n"
    "Now complete the following example -\nInput: the sun shines.\nOutput: "
)
QUERY = "Now complete the following example -\nInput: the sun shines.\nOutput: "


def test_default_reproduces_tk_instruct_with_task_name() -> None:
    example = format_instance(TOY, TOY.instances[0], PromptFormat(add_task_name=True))
    assert example.prompt == GOLDEN_TK
    assert example.targets == ("happy", "glad")
    assert (example.task, example.instance_id, example.template_index) == ("task7_toy", "q0", 0)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (PromptFormat(kind="definition"), "Definition: Say whether the sentence is happy or sad.\n\n" + QUERY),
        (PromptFormat(kind="exemplars", n_exemplars=3),
         " Positive Example 1 -\nInput: I won.\n Output: happy.\n\n"
         " Positive Example 2 -\nInput: I lost.\n Output: sad.\n\n"
         " Positive Example 3 -\nInput: Rain?\n Output: sad!\n\n" + QUERY),
        (PromptFormat(kind="task_id"), "task7_toy. " + QUERY),
        (PromptFormat(kind="none", add_task_name=True), QUERY),
        (PromptFormat(kind="definition_exemplars", n_exemplars=1, add_explanation=True),
         "Definition: Say whether the sentence is happy or sad.\n\n"
         " Positive Example 1 -\nInput: I won.\n Output: happy.\n Explanation: Winning is good.\n\n" + QUERY),
        (PromptFormat(kind="exemplars", n_exemplars=1, n_negative_exemplars=1, add_explanation=True),
         " Positive Example 1 -\nInput: I won.\n Output: happy.\n Explanation: Winning is good.\n\n"
         " Negative Example 1 -\nInput: I lost it.\n Output: happy.\n Explanation: Wrong label.\n\n" + QUERY),
        (PromptFormat(kind="definition", definition_template="Task: {definition}\n", query_template="Q: {input}\nA:",
                      punctuate=False),
         "Task: Say whether the sentence is happy or sad\nQ: the sun shines\nA:"),
    ],
)
def test_each_kind_has_its_documented_template(fmt: PromptFormat, expected: str) -> None:
    assert format_instance(TOY, TOY.instances[0], fmt).prompt == expected


def test_tk_punctuation_rule() -> None:
    assert tk_punctuate(" ends ") == "ends."
    assert tk_punctuate("done.") == "done."
    assert tk_punctuate("why?") == "why?"
    assert tk_punctuate("quote'") == "quote'"
    assert tk_punctuate("") == "."


def test_exemplars_are_added_only_while_the_prompt_fits() -> None:
    base = format_instance(TOY, TOY.instances[0], PromptFormat(kind="definition")).prompt
    one = format_instance(TOY, TOY.instances[0], PromptFormat(n_exemplars=1)).prompt
    budget = len(one.split())
    fitted = format_instance(TOY, TOY.instances[0], PromptFormat(n_exemplars=3, max_prompt_tokens=budget)).prompt
    assert fitted == one
    none_fit = format_instance(TOY, TOY.instances[0], PromptFormat(max_prompt_tokens=len(base.split()))).prompt
    assert none_fit == base
    by_chars = format_instance(TOY, TOY.instances[0], PromptFormat(n_exemplars=3, max_prompt_tokens=len(one)),
                               count_tokens=len).prompt
    assert by_chars == one


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(min_value=1, max_value=80), k=st.integers(min_value=0, max_value=3))
def test_budget_property(budget: int, k: int) -> None:
    fmt = PromptFormat(n_exemplars=k, max_prompt_tokens=budget)
    prompt = format_instance(TOY, TOY.instances[0], fmt).prompt
    n_shots = prompt.count("Positive Example")
    base = format_instance(TOY, TOY.instances[0], PromptFormat(kind="definition")).prompt
    assert n_shots <= k
    if n_shots:
        assert len(prompt.split()) <= budget
    if n_shots < k:  # the next exemplar would not have fitted
        bigger = format_instance(TOY, TOY.instances[0], PromptFormat(n_exemplars=n_shots + 1)).prompt
        assert len(bigger.split()) > budget or len(base.split()) > budget
    assert prompt.endswith("Output: ")


def _templated(n_templates: int = 3, n: int = 12) -> Task:
    templates = tuple(Template(input=f"T{i}: {{text}}", output="{label}", verbalizer={"label": {"1": "yes", "0": "no"}})
                      for i in range(n_templates))
    instances = tuple(Instance(f"r{j}", "", (), fields={"text": f"row {j}", "label": j % 2}) for j in range(n))
    return Task(name="tmpl", instances=instances, templates=templates, definition="Answer yes or no")


def test_templated_task_uses_the_template_as_instruction() -> None:
    task = _templated()
    ex = format_instance(task, task.instances[1], PromptFormat(kind="none", template_index=2))
    assert ex.prompt == "Now complete the following example -\nInput: T2: row 1.\nOutput: "
    assert ex.targets == ("yes",) and ex.template_index == 2


def test_template_policies_fixed_cycle_sample() -> None:
    task = _templated()
    fixed = format_task(task, None, PromptFormat(template_index=1))
    assert {e.template_index for e in fixed} == {1}
    cycled = format_task(task, None, PromptFormat(template_policy="cycle"))
    assert [e.template_index for e in cycled] == [i % 3 for i in range(12)]
    sampled = [e.template_index for e in format_task(task, None, PromptFormat(template_policy="sample"), seed=5)]
    again = [e.template_index for e in format_task(task, None, PromptFormat(template_policy="sample"), seed=5)]
    assert sampled == again and set(sampled) == {0, 1, 2}
    reordered = format_task(task, task.instances[::-1], PromptFormat(template_policy="sample"), seed=5)
    assert [e.template_index for e in reordered] == sampled[::-1]  # keyed by instance id, not position
    others = {tuple(e.template_index for e in format_task(task, None, PromptFormat(template_policy="sample"), seed=s))
              for s in range(4)}
    assert len(others) > 1


def test_explicit_exemplars_from_a_pool_render_with_the_same_template_and_skip_the_query() -> None:
    task = _templated()
    fmt = PromptFormat(kind="exemplars", n_exemplars=2, template_index=1)
    ex = format_instance(task, task.instances[0], fmt, exemplars=task.instances[:3])
    assert ex.prompt == (
        " Positive Example 1 -\nInput: T1: row 1.\n Output: yes.\n\n"
        " Positive Example 2 -\nInput: T1: row 2.\n Output: no.\n\n"
        "Now complete the following example -\nInput: T1: row 0.\nOutput: "
    )


def test_label_tokens_masks_prompt_and_trains_target_and_eos() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "</s>", "Now", "complete", "the", "following", "example", "-", "Input:", "sun", "shines.",
             "Output:", "happy", "glad"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="</s>")
    ex = format_instance(TOY, TOY.instances[0], PromptFormat(kind="none"))
    views = label_tokens(tok, ex)
    prompt_ids = tok(ex.prompt)["input_ids"]
    assert [v.token_id for v in views] == [*prompt_ids, words.index("happy"), words.index("</s>")]
    assert [v.trained for v in views] == [False] * len(prompt_ids) + [True, True]
    assert views[-2].text == "happy"


def test_every_real_sni_task_formats_in_the_tk_layout(sni_sample) -> None:
    from taskscope.tasks import load_suite

    for task in load_suite(f"sni:{sni_sample}"):
        for instance, example in zip(task.instances[:2], format_task(task, task.instances[:2]), strict=True):
            assert example.prompt.startswith("Definition: ")
            assert example.prompt.count(" Positive Example ") == min(2, len(task.positive_examples))
            assert example.prompt.endswith(f"Input: {tk_punctuate(instance.input)}\nOutput: ")
            assert example.targets == instance.outputs


# ---------------------------------------------------------------- the paper's Figure 5 formats (issue 16)
QASC = Task(
    name="task040_qasc_question_generation",
    definition="Write a question",
    positive_examples=(Example("a", "A"), Example("b", "B"), Example("c", "C"), Example("d", "D")),
    instances=(Instance("x0", "the query", ("Q",)),),
)


def test_mueller_context_format_is_the_figure_5_layout() -> None:
    from taskscope.tasks.formats import named_format

    prompt = format_instance(QASC, QASC.instances[0], named_format("mueller_context")).prompt
    assert prompt == "input: a\noutput: A\n\ninput: b\noutput: B\n\ninput: c\noutput: C\n\ninput: the query"


def test_mueller_task_id_format_and_the_task_id_rule() -> None:
    from taskscope.tasks.formats import named_format, paper_task_id

    assert format_instance(QASC, QASC.instances[0], named_format("mueller_task_id")).prompt == (
        "task_040_qasc: the query")
    assert paper_task_id("task1346_glue_cola_grammatical") == "task_1346_glue"
    assert paper_task_id("sentiment_negation") == "sentiment_negation"
    # Tk's task_id form is unchanged
    assert format_instance(QASC, QASC.instances[0], PromptFormat(kind="task_id")).prompt.startswith(
        "task040_qasc_question_generation. ")


def test_resolve_format_names_dicts_and_defaults() -> None:
    from taskscope.tasks.formats import resolve_format

    assert resolve_format("mueller_context").n_exemplars == 3
    assert resolve_format({"format": "mueller_context", "n_exemplars": 1}).n_exemplars == 1
    assert resolve_format({"kind": "exemplars"}, n_exemplars=3).n_exemplars == 3
    assert resolve_format({"kind": "exemplars", "n_exemplars": 2}, n_exemplars=3).n_exemplars == 2
    with pytest.raises(ValueError, match="unknown prompt format 'figure9'"):
        resolve_format("figure9")


LONG = Task(
    name="long_def",
    definition=" ".join(f"d{i}" for i in range(40)),
    positive_examples=(Example("e1 e1 e1", "o1"), Example("e2 e2 e2", "o2")),
    instances=(Instance("q", "alpha beta gamma", ("o",)),),
)


def test_over_long_prompt_drops_exemplars_first_then_cuts_the_definition_end_never_silently() -> None:
    from taskscope.tasks.formats import PromptTruncationWarning

    fmt = PromptFormat(kind="definition_exemplars", n_exemplars=2, punctuate=False)
    full = format_instance(LONG, LONG.instances[0], fmt)
    n_full = len(full.prompt.split())
    # budget: room for the definition and the query but not for both exemplars -> one exemplar dropped
    one = format_instance(LONG, LONG.instances[0], fmt.model_copy(update={"max_prompt_tokens": n_full - 6}))
    assert one.dropped_exemplars == 1 and one.cut_words == 0
    assert "d39" in one.prompt and "alpha beta gamma" in one.prompt
    # budget below the definition + query: every exemplar goes, then the definition's END, keeping its start
    small = format_instance(LONG, LONG.instances[0], fmt.model_copy(update={"max_prompt_tokens": 30}))
    assert small.dropped_exemplars == 2 and small.cut_words > 0
    assert len(small.prompt.split()) <= 30
    assert small.prompt.startswith("Definition: d0 d1") and "d39" not in small.prompt
    assert small.prompt.endswith("Input: alpha beta gamma\nOutput: ")  # the input is whole
    with pytest.warns(PromptTruncationWarning, match=r"1 of 1 prompts .*2 exemplars dropped.*words cut"):
        format_task(LONG, None, fmt.model_copy(update={"max_prompt_tokens": 30}))


def test_input_is_cut_only_when_the_definition_is_gone() -> None:
    fmt = PromptFormat(kind="definition", punctuate=False)
    tiny = format_instance(LONG, LONG.instances[0], fmt.model_copy(update={"max_prompt_tokens": 10}))
    assert "Definition" not in tiny.prompt and len(tiny.prompt.split()) == 10
    assert tiny.prompt.endswith("Input: alpha beta\nOutput: ")
    assert tiny.cut_words == 40 + 1  # the whole definition, then "gamma"
