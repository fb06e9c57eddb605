"""The builtin task source: coverage, determinism, rendering, balance, and that each rule really holds."""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.tasks import TaskError, TaskSuite, load_suite
from taskscope.tasks.builtin import CLUSTERS, TASK_SPECS, load_builtin, parse_options
from taskscope.tasks.builtin.catalog import render_catalog
from taskscope.tasks.builtin.commonsense import SEQUENCES, SIZES
from taskscope.tasks.builtin.sentiment import POSITIVE
from taskscope.tasks.builtin.translation import ZORBIC_ADJECTIVES
from taskscope.tasks.builtin.words import CITIES, FEMALE_NAMES, MALE_NAMES

N = 120
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def suite() -> TaskSuite:
    return load_suite("builtin", n_instances=N, seed=0)


def _digest(suite: TaskSuite) -> str:
    payload = [(t.name, [(i.id, i.input, i.outputs) for i in t.instances],
                [(e.input, e.output, e.explanation) for e in t.positive_examples]) for t in suite]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


# ---------------------------------------------------------------- coverage and metadata


def test_suite_covers_enough_tasks_and_clusters(suite):
    assert suite.name == "builtin"
    assert len(suite) >= 24
    clusters = Counter(task.cluster for task in suite)
    assert len(clusters) >= 8
    assert all(count >= 2 for count in clusters.values()), clusters
    assert sum(bool(task.negative_examples) for task in suite) >= len(suite) - 2


def test_every_task_is_described_and_templated(suite):
    for task in suite:
        assert task.source == "builtin" and task.clusters == (task.cluster,) and task.domains
        assert task.definition.endswith("."), task.name
        assert len(task.templates) >= 3, task.name
        assert len({(t.input, t.output) for t in task.templates}) == len(task.templates), task.name
        assert task.metadata["task_type"] in ("classification", "generation")
        assert 2 <= len(task.positive_examples) <= 3
        for example in task.positive_examples:
            assert example.input and example.output and example.explanation, task.name
        for negative in task.negative_examples:
            correct = next(e.output for e in task.positive_examples if e.input == negative.input)
            assert negative.output != correct and correct in negative.explanation, task.name


def test_classification_labels_are_template_zero_outputs(suite):
    for task in suite:
        if task.metadata["task_type"] != "classification":
            assert "labels" not in task.metadata
            continue
        labels = task.metadata["labels"]
        assert len(labels) >= 2
        assert {i.outputs[0] for i in task.instances} == set(labels), task.name
        assert {i.fields["label"] for i in task.instances} == set(labels), task.name


def test_examples_are_not_instances(suite):
    for task in suite:
        if task.metadata["finite_inputs"]:  # a fixed set of facts repeats by nature
            continue
        inputs = {i.input for i in task.instances}
        assert not inputs & {e.input for e in task.positive_examples}, task.name


# ---------------------------------------------------------------- rendering and size


def test_every_template_renders_every_instance(suite):
    for task in suite:
        for instance in task.instances:
            assert task.render(instance, 0).input == instance.input
            assert task.render(instance, 0).outputs == instance.outputs
            for k in range(len(task.templates)):
                rendered = task.render(instance, k)
                assert rendered.input and rendered.outputs and all(rendered.outputs), (task.name, k)
                assert "{" not in rendered.input.replace("{}", ""), (task.name, k, rendered.input)


def test_inputs_and_outputs_are_short(suite):
    for task in suite:
        for instance in task.instances:
            for k in range(len(task.templates)):
                rendered = task.render(instance, k)
                assert len(rendered.input.split()) <= 48, (task.name, rendered.input)
                assert all(1 <= len(out.split()) <= 12 for out in rendered.outputs), (task.name, rendered.outputs)


def test_ids_unique_and_inputs_mostly_unique(suite):
    for task in suite:
        ids = [i.id for i in task.instances]
        assert ids == [f"{task.name}-0-{k}" for k in range(N)]
        if not task.metadata["finite_inputs"]:
            assert len({i.input for i in task.instances}) >= 0.95 * N, task.name


def test_labels_are_balanced(suite):
    for task in suite:
        if task.metadata["task_type"] == "classification":
            counts = Counter(i.outputs[0] for i in task.instances)
            assert max(counts.values()) - min(counts.values()) <= 1, (task.name, counts)


# ---------------------------------------------------------------- determinism and options


def test_same_seed_same_data_other_seed_other_data(suite):
    assert _digest(load_suite("builtin", n_instances=N, seed=0)) == _digest(suite)
    other = load_suite("builtin", n_instances=N, seed=1)
    for a, b in zip(suite, other):
        assert [i.input for i in a.instances] != [i.input for i in b.instances], a.name


def test_data_is_stable_across_processes(suite):
    code = ("import hashlib, json; from taskscope.tasks import load_suite; "
            f"s = load_suite('builtin', n_instances={N}, seed=0); "
            "p = [(t.name, [(i.id, i.input, i.outputs) for i in t.instances], "
            "[(e.input, e.output, e.explanation) for e in t.positive_examples]) for t in s]; "
            "print(hashlib.sha256(json.dumps(p).encode()).hexdigest())")
    env = {"PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == _digest(suite)


def test_n_instances_is_honoured_and_smaller_is_a_prefix(suite):
    small = load_suite("builtin", n_instances=7, seed=0)
    for big_task, small_task in zip(suite, small):
        assert small_task.n_instances == 7
        assert small_task.instances == big_task.instances[:7]
    assert all(t.n_instances == 0 for t in load_suite("builtin", n_instances=0))


def test_spec_options_and_filters():
    suite = load_suite("builtin:n_instances=5,seed=3,clusters=nli+arithmetic")
    assert {t.cluster for t in suite} == {"nli", "arithmetic"}
    assert all(t.n_instances == 5 and t.instances[0].id.endswith("-3-0") for t in suite)
    alone = load_builtin(tasks=["nli_numbers"], n_instances=5, seed=3)
    assert alone.names == ["nli_numbers"] and alone["nli_numbers"] == suite["nli_numbers"]
    assert parse_options(" seed = 2 , tasks=a+b ") == {"seed": 2, "tasks": ["a", "b"]}
    assert load_suite("builtin:seed=2", n_instances=3, seed=2)["arith_compare"].n_instances == 3


@pytest.mark.parametrize(("spec", "options", "field"), [
    ("builtin:colour=red", {}, "spec"),
    ("builtin:seed", {}, "spec"),
    ("builtin:seed=x", {}, "seed"),
    ("builtin:seed=2", {"seed": 5}, "seed"),
    ("builtin", {"tasks": ["no_such_task"]}, "tasks"),
    ("builtin", {"clusters": ["astrology"]}, "clusters"),
    ("builtin", {"n_instances": -1}, "n_instances"),
])
def test_bad_options_raise_clear_errors(spec, options, field):
    with pytest.raises(TaskError) as error:
        load_suite(spec, **options)
    assert error.value.field == field


# ---------------------------------------------------------------- the rules hold (independent checks)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _eval_arithmetic(text: str) -> int:
    def walk(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        return _OPS[type(node.op)](walk(node.left), walk(node.right))

    return walk(ast.parse(text, mode="eval").body)


def _instances(name: str, seed: int, n: int = 60):
    return load_builtin(tasks=[name], n_instances=n, seed=seed)[name].instances


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_arithmetic_answers_are_correct(seed):
    for instance in _instances("arith_expression", seed):
        assert int(instance.outputs[0]) == _eval_arithmetic(instance.fields["expression"])
    for instance in _instances("arith_compare", seed):
        f = instance.fields
        assert instance.outputs[0] == ("yes" if f["a"] + f["b"] > f["c"] else "no")
    for instance in _instances("arith_word_problem", seed):
        start, first, second = map(int, re.findall(r"\d+", instance.fields["problem"]))
        sign = 1 if "gets" in instance.fields["problem"].split(".")[1].split("and")[0] else -1
        assert int(instance.outputs[0]) == start + sign * first - sign * second >= 0


_FUNCTIONS = {"max": max, "min": min, "len": len, "sum": sum, "sorted": sorted}


def _run_program(program: str) -> str:
    """Interpret our one-line snippets independently: assignments and one ``print`` over a small AST subset."""
    env: dict[str, object] = {}
    printed: list[str] = []

    def value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.List):
            return [value(item) for item in node.elts]
        if isinstance(node, ast.Subscript):
            return value(node.value)[value(node.slice)]
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Call):
            return _FUNCTIONS[node.func.id](*[value(arg) for arg in node.args])
        raise AssertionError(f"unexpected syntax {ast.dump(node)} in {program!r}")

    for statement in ast.parse(program).body:
        if isinstance(statement, ast.Assign):
            env[statement.targets[0].id] = value(statement.value)
        else:
            assert statement.value.func.id == "print", program
            printed.append(str(value(statement.value.args[0])))
    assert len(printed) == 1
    return printed[0]


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_programs_print_the_answer(seed):
    for name in ("prog_one_variable", "prog_two_variables", "prog_list_function"):
        for instance in _instances(name, seed):
            assert _run_program(instance.fields["program"]) == instance.outputs[0], instance.fields["program"]


def test_zorbic_is_a_consistent_invertible_mapping():
    to_zorbic: dict[str, str] = {}
    for name in ("translate_en_zorbic", "translate_zorbic_en"):
        for instance in _instances(name, seed=4, n=200):
            english, zorbic = instance.fields["english"].split(), instance.fields["zorbic"].split()
            assert len(english) == len(zorbic)
            for en_word, zo_word in zip(_swap_adjectives(english), zorbic):
                assert to_zorbic.setdefault(en_word, zo_word) == zo_word, (en_word, zo_word)
    assert len(set(to_zorbic.values())) == len(to_zorbic)  # one-to-one, hence invertible
    back = {zo: en for en, zo in to_zorbic.items()}
    for instance in _instances("translate_zorbic_en", seed=5):
        assert _translate(instance.fields["zorbic"], back) == instance.outputs[0]


def _swap_adjectives(words: list[str]) -> list[str]:
    """Swap every English adjective with the word after it (its noun): English order <-> Zorbic order."""
    out, k = list(words), 0
    while k < len(out) - 1:
        if out[k] in ZORBIC_ADJECTIVES:
            out[k], out[k + 1] = out[k + 1], out[k]
            k += 1
        k += 1
    return out


def _translate(zorbic: str, back: dict[str, str]) -> str:
    """Word-by-word back-translation, then each (noun, adjective) pair back to (adjective, noun)."""
    words = [back[w] for w in zorbic.split()]
    out, k = list(words), 0
    while k < len(out) - 1:
        if out[k + 1] in ZORBIC_ADJECTIVES:
            out[k], out[k + 1] = out[k + 1], out[k]
            k += 1
        k += 1
    return " ".join(out)


def test_pig_latin_follows_the_rule():
    for instance in _instances("translate_pig_latin", seed=2):
        for word, piggy in zip(instance.fields["text"].split(), instance.outputs[0].split()):
            if word[0] in "aeiou":
                assert piggy == word + "way"
            else:
                head = re.match(r"(qu|[^aeiou]+)", word).group(1)
                assert piggy == word[len(head):] + head + "ay"


def test_coreference_and_reading_rules():
    for instance in _instances("coref_gender", seed=1):
        names = FEMALE_NAMES if instance.fields["pronoun"] == "she" else MALE_NAMES
        assert instance.outputs[0] in names and instance.outputs[0] in instance.fields["sentence"]
    for instance in _instances("coref_fit", seed=1):
        expected = instance.fields["item"] if instance.fields["size"] == "big" else instance.fields["container"]
        assert instance.outputs[0] == f"the {expected}"
    for instance in _instances("rc_location", seed=1):
        target = instance.fields["question"].removeprefix("Where is ").rstrip("?")
        moves = re.findall(rf"{target} \w+ to the (\w+)\.", instance.fields["passage"])
        assert instance.outputs[0] == f"the {moves[-1]}"


def test_sentiment_and_nli_rules():
    for instance in _instances("sentiment_negation", seed=6):
        text = instance.fields["text"]
        scores = [(1 if adj in POSITIVE else -1) * (-1 if neg else 1)
                  for neg, adj in re.findall(r"was (not )?(\w+)", text)]
        assert len(set(scores)) == 1 and instance.outputs[0] == ("positive" if scores[0] > 0 else "negative")
    for instance in _instances("sentiment_contrast", seed=6):
        negated, adjective = re.search(r"but .* was (not )?(\w+)\.$", instance.fields["text"]).groups()
        positive = (adjective in POSITIVE) != bool(negated)
        assert instance.outputs[0] == ("positive" if positive else "negative")
    country_of = dict(CITIES)
    for instance in _instances("nli_location", seed=6):
        city = instance.fields["premise"].split(" in ")[-1].rstrip(".")
        claimed = instance.fields["hypothesis"].split(" in ")[-1].rstrip(".")
        assert instance.outputs[0] == ("entailment" if country_of[city] == claimed else "not_entailment")
    for instance in _instances("nli_numbers", seed=6):
        count = int(re.search(r"\d+", instance.fields["premise"]).group())
        relation, bound = re.search(r"(more than|fewer than|exactly) (\d+)", instance.fields["hypothesis"]).groups()
        holds = {"more than": count > int(bound), "fewer than": count < int(bound), "exactly": count == int(bound)}
        assert instance.outputs[0] == ("entailment" if holds[relation] else "not_entailment")


def test_commonsense_rules():
    for instance in _instances("commonsense_order", seed=8):
        f = instance.fields
        sequence = SEQUENCES[f["kind"]]
        step = (1 if f["step"] == "right" else 2) * (1 if f["direction"] == "after" else -1)
        position = sequence.index(f["item"])
        if f["kind"] == "meal":
            assert 0 <= position + step < len(sequence)
        assert instance.outputs[0] == sequence[(position + step) % len(sequence)]
    for instance in _instances("commonsense_size", seed=8):
        f = instance.fields
        ranked = sorted((f["thing_a"], f["thing_b"]), key=SIZES.index)
        assert instance.outputs[0] == ranked[1 if f["comparative"] in ("bigger", "heavier") else 0]


def test_finite_tasks_still_vary():
    for task in load_builtin(n_instances=200):
        if task.metadata["finite_inputs"]:
            assert len({i.input for i in task.instances}) >= 30, task.name


def test_registry_lists_every_task_once():
    suite = load_builtin(n_instances=1)
    assert sorted(suite.names) == sorted(TASK_SPECS)
    assert suite.clusters == [c for c in CLUSTERS if c in suite.clusters]  # grouped, in the declared order


def test_docs_catalog_is_current():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "builtin_tasks.md").read_text()
    assert render_catalog() in docs, "regenerate with: python -m taskscope.tasks.builtin.catalog"
