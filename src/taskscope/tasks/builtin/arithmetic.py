"""Arithmetic cluster: two- or three-step expressions, word problems, and comparing a sum with a number."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import NAMES
from taskscope.tasks.core import Template


def _evaluate(numbers: list[int], operators: list[str]) -> int:
    """``a op b op c ...`` over ``+``, ``-``, ``*``: first fold each ``*`` into its term, then add/subtract left to right."""
    terms, signs = [numbers[0]], []
    for op, number in zip(operators, numbers[1:]):
        if op == "*":
            terms[-1] *= number
        else:
            terms.append(number)
            signs.append(op)
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        total = total + term if sign == "+" else total - term
    return total


@builtin_task(
    "arith_expression",
    cluster="arithmetic",
    domains=("mathematics",),
    definition="Compute the value of the arithmetic expression. Multiplication comes before addition and "
    "subtraction; otherwise work from left to right. Answer with the number only.",
    templates=(
        Template("What is {expression}?", "{answer}"),
        Template("Compute: {expression} =", "{answer}"),
        Template("Solve {expression}. Give only the result.", "{answer}"),
    ),
)
def _arith_expression(rng, label):
    n_operators = rng.choice((2, 2, 3))
    operators = [rng.choice("+-*") for _ in range(n_operators)]
    numbers = [rng.randint(1, 12) for _ in range(n_operators + 1)]
    for i, op in enumerate(operators):  # keep products small
        if op == "*":
            numbers[i + 1] = rng.randint(2, 5)
    expression = str(numbers[0]) + "".join(f" {op} {n}" for op, n in zip(operators, numbers[1:]))
    answer = _evaluate(numbers, operators)
    return {"expression": expression, "answer": str(answer), "rationale": f"{expression} = {answer}."}


ITEMS = ("apples", "marbles", "stickers", "cookies", "books", "balloons", "pencils", "shells")


@builtin_task(
    "arith_word_problem",
    cluster="arithmetic",
    domains=("mathematics",),
    definition="Solve the short word problem: add what a person gets, subtract what they give away, "
    "and answer with the final number.",
    templates=(
        Template("{problem}\nAnswer with a number.", "{answer}"),
        Template("Question: {problem}\nAnswer:", "{answer}"),
        Template("Solve this word problem. {problem}", "{answer}"),
    ),
)
def _arith_word_problem(rng, label):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start = rng.randint(3, 15)
    gained = rng.randint(1, 9)
    if rng.random() < 0.5:
        lost = rng.randint(1, min(9, start + gained))
        steps = f"gets {gained} more and then gives away {lost}"
    else:
        lost = rng.randint(1, min(9, start))
        steps = f"gives away {lost} and then gets {gained} more"
    answer = start + gained - lost
    problem = f"{name} has {start} {item}. {name} {steps}. How many {item} does {name} have now?"
    return {"problem": problem, "answer": str(answer), "start": start, "gained": gained, "lost": lost,
            "rationale": f"{start} + {gained} - {lost} = {answer}."}


@builtin_task(
    "arith_compare",
    cluster="arithmetic",
    domains=("mathematics",),
    definition="Decide whether the sum on the left is greater than the number on the right. Answer yes or no.",
    templates=(
        Template("Is {a} + {b} greater than {c}?", "{label}"),
        Template("True or false: {a} + {b} > {c}", "{label}",
                 verbalizer={"label": {"yes": "true", "no": "false"}}),
        Template("Compare {a} + {b} with {c}. Is the sum bigger? Answer yes or no.", "{label}"),
    ),
    labels=("yes", "no"),
)
def _arith_compare(rng, label):
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    total = a + b
    c = total - rng.randint(1, 10) if label == "yes" else total + rng.randint(0, 10)
    verdict = "greater" if label == "yes" else "not greater"
    return {"a": a, "b": b, "c": c, "label": label, "rationale": f"{a} + {b} = {total}, which is {verdict} than {c}."}
