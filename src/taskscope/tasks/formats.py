"""Prompt formats for the task context r_k, and the examples a model sees.

Five kinds (:class:`PromptFormat` ``kind``), each one documented template; every template string
is a field of :class:`PromptFormat` and can be overridden:

=========================  ==================================================================
``definition``             [task name] + definition + query
``definition_exemplars``   [task name] + definition + up to ``n_exemplars`` positive exemplars + query
``exemplars``              [task name] + up to ``n_exemplars`` positive exemplars + query
``task_id``                task name + query
``none``                   query only
``prompt``                 the instance input verbatim: it already is the whole prompt (``jsonl:`` records
                           with a ``prompt``, as ``taskscope tasks export`` writes them); no punctuation
=========================  ==================================================================

Named formats (:data:`NAMED_FORMATS`, :func:`named_format`, :func:`resolve_format`) fix every template of
a kind: the five kinds above with Tk-Instruct's strings, and the layouts of Mueller, Dredze and Andrews'
Figure 5 (reconstructed from the figure; every string stays overridable):

=====================  ==========================================================================
``mueller_context``    three ``input: …`` / ``output: …`` blocks, a blank line after each, then
                       ``input: {x}`` (no Tk punctuation)
``mueller_task_id``    the task id (``task040_qasc_question_generation`` -> ``task_040_qasc``), a
                       colon and the input: ``task_040_qasc: {x}``
``mueller_definition`` the definition, a blank line, then ``input: {x}``
=====================  ==========================================================================

The default strings reproduce the Tk-Instruct data collator (Wang et al., 2022) exactly; with
``add_task_name=True`` and two exemplars the prompt is::

    {task name}. Definition: {definition}.

     Positive Example 1 -
    Input: {input}.
     Output: {output}.

     Positive Example 2 -
    Input: {input}.
     Output: {output}.

    Now complete the following example -
    Input: {x}.
    Output: 

Order of operations in :func:`format_instance`:

1. choose the template of a templated task (``template_policy``: ``fixed`` = ``template_index``;
   ``cycle`` = instance position modulo the number of templates; ``sample`` = a draw seeded by
   ``hash(seed, task name, instance id)``) and render the instance with it - for templated tasks
   the rendered template *is* the instruction and fills ``{x}``;
2. Tk-Instruct punctuation (``punctuate=True``): strip each text, then add a final ``"."`` when it
   does not end in punctuation - to the definition, each exemplar's input, output and explanation,
   and the query input (never to targets);
3. build the fixed parts: task name, definition block (omitted when the task has no definition),
   query;
4. add exemplars one at a time (explicit ``exemplars``, e.g. from a few-shot pool, else the task's
   positive examples; explicit :class:`Instance` s are rendered with the same template and an
   exemplar with the query's id is skipped), then ``n_negative_exemplars`` negative examples
   (default 0, as Tk-Instruct's default), while ``count_tokens(prompt) <= max_prompt_tokens``;
   the first one of each group that does not fit stops that group, as in Tk-Instruct (which counts with
   ``" ".join`` of the exemplars and leaves the task name out; we count the exact prompt).
5. a prompt still over ``max_prompt_tokens`` without any exemplar keeps its task name and its
   ``output``/query scaffolding and is cut, in this order, in the *definition* (its last words first)
   and then in the *input* (its last words first) until it fits.  Nothing is cut silently: every
   :class:`FormattedExample` records ``dropped_exemplars`` and ``cut_words`` and :func:`warn_truncation`
   (called by :func:`format_task` and the evaluators) emits one :class:`PromptTruncationWarning` per
   call with the counts.  (A model-side limit that keeps the *last* tokens would cut the definition
   first; budget the prompt here so that never happens.)
"""

from __future__ import annotations

import json
import os
import re
import string
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from taskscope.tasks.core import Example, Instance, Task
from taskscope.tasks.splits import seed_from

FormatKind = Literal["definition", "definition_exemplars", "exemplars", "task_id", "none", "prompt"]
FORMAT_KINDS: tuple[str, ...] = ("definition", "definition_exemplars", "exemplars", "task_id", "none", "prompt")
_WITH_DEFINITION = {"definition", "definition_exemplars"}
_WITH_EXEMPLARS = {"definition_exemplars", "exemplars"}


class PromptFormat(BaseModel):
    """How a task context r_k and an input become a prompt.  Defaults: Tk-Instruct, definition + 2 exemplars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FormatKind = "definition_exemplars"
    n_exemplars: int = Field(default=2, ge=0)
    n_negative_exemplars: int = Field(default=0, ge=0)
    add_task_name: bool = False
    add_explanation: bool = False
    punctuate: bool = True
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    template_policy: Literal["fixed", "cycle", "sample"] = "fixed"
    template_index: int = Field(default=0, ge=0)

    task_name_template: str = "{task_name}. "  # also knows {task_id} (paper_task_id)
    definition_template: str = "Definition: {definition}\n\n"
    exemplar_template: str = " Positive Example {number} -\nInput: {input}\n Output: {output}\n{explanation}\n"
    negative_exemplar_template: str = " Negative Example {number} -\nInput: {input}\n Output: {output}\n{explanation}\n"
    explanation_template: str = " Explanation: {explanation}\n"
    query_template: str = "Now complete the following example -\nInput: {input}\nOutput: "


_CONTEXT_BLOCK = "input: {input}\noutput: {output}\n\n"
_CONTEXT_QUERY = "input: {input}"

NAMED_FORMATS: dict[str, PromptFormat] = {
    **{kind: PromptFormat(kind=kind) for kind in FORMAT_KINDS},  # type: ignore[arg-type]
    "mueller_context": PromptFormat(kind="exemplars", n_exemplars=3, punctuate=False,
                                    exemplar_template=_CONTEXT_BLOCK, query_template=_CONTEXT_QUERY,
                                    definition_template="{definition}\n\n"),
    "mueller_task_id": PromptFormat(kind="task_id", punctuate=False, task_name_template="{task_id}: ",
                                    query_template="{input}"),
    "mueller_definition": PromptFormat(kind="definition", punctuate=False, definition_template="{definition}\n\n",
                                       query_template=_CONTEXT_QUERY),
}


def named_format(name: str, **overrides: Any) -> PromptFormat:
    """The named format ``name`` (:data:`NAMED_FORMATS`) with ``overrides`` applied and validated."""
    if name not in NAMED_FORMATS:
        raise ValueError(f"unknown prompt format {name!r}; known: {sorted(NAMED_FORMATS)}")
    return PromptFormat.model_validate({**NAMED_FORMATS[name].model_dump(), **overrides})


def resolve_format(spec: str | dict[str, Any] | PromptFormat, **defaults: Any) -> PromptFormat:
    """A format from a config value: a name (:data:`NAMED_FORMATS`), a dict of `PromptFormat` fields with an
    optional ``format: <name>`` to start from, or a `PromptFormat`.  ``defaults`` (e.g. ``n_exemplars=3``)
    fill fields the spec leaves unset; the spec wins."""
    if isinstance(spec, PromptFormat):
        return spec
    if isinstance(spec, str):
        spec = {"format": spec}
    fields = dict(spec)
    base = fields.pop("format", None)
    if base is None:
        return PromptFormat.model_validate({**defaults, **fields})
    return named_format(base, **{**defaults, **fields})


def paper_task_id(name: str) -> str:
    """Mueller et al.'s task id: ``task040_qasc_question_generation`` -> ``task_040_qasc`` (other names unchanged)."""
    match = re.match(r"^task(\d+)_([A-Za-z0-9]+)", name)
    return f"task_{match.group(1)}_{match.group(2)}" if match else name


class PromptTruncationWarning(UserWarning):
    """Prompts that lost exemplars, or words of the definition or input, to ``max_prompt_tokens``."""


class PromptReuseWarning(UserWarning):
    """A task whose inputs already are whole prompts (``metadata["prompts"]``) formatted by a kind other than
    ``prompt``, which wraps them in a second context."""


@dataclass(frozen=True)
class FormattedExample:
    """One prompt as a model sees it, with every reference target, and what the token budget cut from it."""

    task: str
    instance_id: str
    prompt: str
    targets: tuple[str, ...]
    template_index: int
    dropped_exemplars: int = 0
    cut_words: int = 0


def count_words(text: str) -> int:
    """The default token counter: whitespace-separated words."""
    return len(text.split())


def tk_punctuate(text: str) -> str:
    """Tk-Instruct's rule: strip, then add ``"."`` unless the text ends in ``string.punctuation``."""
    text = text.strip()
    return text if text and text[-1] in string.punctuation else text + "."


def choose_template(task: Task, instance: Instance, fmt: PromptFormat, *, position: int = 0, seed: int = 0) -> int:
    """The template index for ``instance`` (0 for plain tasks); see step 1 of the module docstring."""
    n = len(task.templates)
    if n == 0:
        return 0
    if fmt.template_policy == "fixed":
        return fmt.template_index % n
    if fmt.template_policy == "cycle":
        return position % n
    return seed_from(seed, task.name, instance.id) % n


def _exemplar_text(fmt: PromptFormat, number: int, example: Example, template: str) -> str:
    fix = tk_punctuate if fmt.punctuate else str.strip
    explanation = ""
    if fmt.add_explanation and example.explanation:
        explanation = fmt.explanation_template.format(explanation=fix(example.explanation))
    return template.format(
        number=number, input=fix(example.input), output=fix(example.output), explanation=explanation
    )


def _exemplar_pool(task: Task, instance: Instance, template_index: int,
                   exemplars: Sequence[Example | Instance] | None) -> list[Example]:
    if exemplars is None:
        return list(task.positive_examples)
    pool = []
    for item in exemplars:
        if isinstance(item, Instance):
            if item.id == instance.id:
                continue
            rendered = task.render(item, template_index)
            item = Example(input=rendered.input, output=rendered.outputs[0] if rendered.outputs else "")
        pool.append(item)
    return pool


def format_instance(
    task: Task,
    instance: Instance,
    fmt: PromptFormat | None = None,
    *,
    exemplars: Sequence[Example | Instance] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    seed: int = 0,
    position: int = 0,
) -> FormattedExample:
    """Format one instance; see the module docstring for the order of operations."""
    fmt = fmt or PromptFormat()
    count = count_tokens or count_words
    template_index = choose_template(task, instance, fmt, position=position, seed=seed)
    rendered = task.render(instance, template_index)
    if fmt.kind == "prompt":
        return FormattedExample(task=task.name, instance_id=instance.id, prompt=rendered.input,
                                targets=tuple(rendered.outputs), template_index=template_index)
    fix = tk_punctuate if fmt.punctuate else str.strip

    head = ""
    if fmt.kind == "task_id" or (fmt.add_task_name and fmt.kind != "none"):
        head += fmt.task_name_template.format(task_name=task.name, task_id=paper_task_id(task.name))
    definition = fix(task.definition) if fmt.kind in _WITH_DEFINITION and task.definition.strip() else None
    query_input = fix(rendered.input)
    budget = fmt.max_prompt_tokens

    def fixed_parts(definition_text: str | None, input_text: str) -> tuple[str, str]:
        block = "" if definition_text is None else fmt.definition_template.format(definition=definition_text)
        return head + block, fmt.query_template.format(input=input_text)

    start, query = fixed_parts(definition, query_input)
    cut_words = 0
    if budget is not None and count(start + query) > budget:
        start, query, cut_words = _cut_to_fit(definition, query_input, fixed_parts, count, budget)

    shots, wanted, kept = "", 0, 0
    if fmt.kind in _WITH_EXEMPLARS:
        groups = (
            (_exemplar_pool(task, instance, template_index, exemplars)[: fmt.n_exemplars], fmt.exemplar_template),
            (list(task.negative_examples[: fmt.n_negative_exemplars]), fmt.negative_exemplar_template),
        )
        for pool, template in groups:
            wanted += len(pool)
            for number, example in enumerate(pool, start=1):
                candidate = shots + _exemplar_text(fmt, number, example, template)
                if budget is not None and count(start + candidate + query) > budget:
                    break
                shots, kept = candidate, kept + 1
    return FormattedExample(
        task=task.name,
        instance_id=instance.id,
        prompt=start + shots + query,
        targets=tuple(rendered.outputs),
        template_index=template_index,
        dropped_exemplars=wanted - kept,
        cut_words=cut_words,
    )


def _cut_to_fit(definition: str | None, query_input: str, parts: Callable[[str | None, str], tuple[str, str]],
                count: Callable[[str], int], budget: int) -> tuple[str, str, int]:
    """Drop the definition's last words, then the input's, until ``count`` fits ``budget`` (step 5)."""

    def longest(words: list[str], fits: Callable[[str], bool]) -> int:
        low, high = 0, len(words)  # the largest m with fits(words[:m]); fits("") is assumed
        while low < high:
            mid = (low + high + 1) // 2
            if fits(" ".join(words[:mid])):
                low = mid
            else:
                high = mid - 1
        return low

    cut = 0
    if definition is not None:
        words = definition.split()
        m = longest(words, lambda text: count("".join(parts(text, query_input))) <= budget)
        cut += len(words) - m
        if m:
            return (*parts(" ".join(words[:m]), query_input), cut)
        definition = None  # nothing of it fits: its block goes too
    words = query_input.split()
    m = longest(words, lambda text: count("".join(parts(definition, text))) <= budget)
    cut += len(words) - m
    return (*parts(definition, " ".join(words[:m])), cut)


def warn_truncation(examples: Sequence[FormattedExample], budget: int | None, *, where: str = "") -> None:
    """One `PromptTruncationWarning` with the counts when the token budget cut anything from ``examples``."""
    dropped = [ex for ex in examples if ex.dropped_exemplars]
    cut = [ex for ex in examples if ex.cut_words]
    if not dropped and not cut:
        return
    tasks = sorted({ex.task for ex in [*dropped, *cut]})
    message = (f"{where + ': ' if where else ''}{len({*map(id, dropped), *map(id, cut)})} of {len(examples)} prompts "
               f"over max_prompt_tokens={budget} (tasks {tasks[:5]}{' ...' if len(tasks) > 5 else ''}): "
               f"{sum(ex.dropped_exemplars for ex in dropped)} exemplars dropped in {len(dropped)} prompts; "
               f"{sum(ex.cut_words for ex in cut)} words cut from the definition or input in {len(cut)} prompts")
    warnings.warn(message, PromptTruncationWarning, stacklevel=3)


def format_task(
    task: Task,
    instances: Sequence[Instance] | None = None,
    fmt: PromptFormat | None = None,
    *,
    seed: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    exemplars: Sequence[Example | Instance] | None = None,
) -> list[FormattedExample]:
    """Format ``instances`` (default: all of the task's) in order; ``position`` drives the ``cycle`` policy.
    Warns once (:func:`warn_truncation`) when the token budget cut anything."""
    chosen = task.instances if instances is None else instances
    if task.metadata.get("prompts") and (fmt or PromptFormat()).kind != "prompt":
        warnings.warn(f"task {task.name!r}: its inputs are already whole prompts (formatted as "
                      f"{task.metadata.get('prompt_format') or 'unknown'!r}); prompt format kind "
                      f"{(fmt or PromptFormat()).kind!r} wraps them again - use kind 'prompt' to keep them verbatim",
                      PromptReuseWarning, stacklevel=2)
    examples = [
        format_instance(task, inst, fmt, exemplars=exemplars, count_tokens=count_tokens, seed=seed, position=i)
        for i, inst in enumerate(chosen)
    ]
    warn_truncation(examples, (fmt or PromptFormat()).max_prompt_tokens, where=f"task {task.name!r}")
    return examples


def example_record(example: FormattedExample, **extra: Any) -> dict[str, Any]:
    """A JSON-ready dict of a formatted example (for export)."""
    return {"task": example.task, "instance_id": example.instance_id, "prompt": example.prompt,
            "targets": list(example.targets), "template_index": example.template_index, **extra}


@dataclass(frozen=True)
class TokenView:
    """One token of ``prompt + target (+ eos)`` and whether training computes loss on it."""

    token_id: int
    text: str
    trained: bool


def label_tokens(tokenizer: Any, example: FormattedExample, target_index: int = 0) -> list[TokenView]:
    """The tokens of the training sequence of ``example``: prompt (with the tokenizer's special
    tokens, masked), then target ``target_index`` (no special tokens, trained), then the EOS token
    when the tokenizer has one (trained).  ``tokenizer`` is any Hugging Face tokenizer."""
    prompt_ids = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
    target_ids = tokenizer(example.targets[target_index], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        target_ids = [*target_ids, tokenizer.eos_token_id]
    return [TokenView(i, tokenizer.convert_ids_to_tokens(i), False) for i in prompt_ids] + [
        TokenView(i, tokenizer.convert_ids_to_tokens(i), True) for i in target_ids
    ]


def export_jsonl(examples: Sequence[dict[str, Any]], out_path: str | Path) -> int:
    """Write one JSON object per line atomically (temp file in the same folder, then ``os.replace``)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in examples:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(examples)
