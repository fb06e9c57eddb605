"""Program execution cluster: trace one variable, trace two variables, and apply a list function.

Programs are tiny Python snippets on one line; the answer is what ``print`` would show.  The
generators compute the answer by simulating the statements themselves (no ``exec``).
"""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.core import Template

_PROGRAM_TEMPLATES = (
    Template("What does this program print?\n{program}", "{answer}"),
    Template("Program: {program}\nOutput:", "{answer}"),
    Template("Run the code in your head and give its output: {program}", "{answer}"),
)


def _apply(value: int, op: str, operand: int) -> int:
    return value + operand if op == "+" else value - operand if op == "-" else value * operand


@builtin_task(
    "prog_one_variable",
    cluster="program_execution",
    domains=("code",),
    definition="Execute the Python program, in which one variable is updated step by step, and give what it prints.",
    templates=_PROGRAM_TEMPLATES,
)
def _prog_one_variable(rng, label):
    name = rng.choice("xyznk")
    value = rng.randint(0, 9)
    statements = [f"{name} = {value}"]
    for _ in range(rng.randint(2, 3)):
        op = rng.choice("+-*")
        operand = rng.randint(2, 3) if op == "*" else rng.randint(1, 9)
        statements.append(f"{name} = {name} {op} {operand}")
        value = _apply(value, op, operand)
    statements.append(f"print({name})")
    return {"program": "; ".join(statements), "answer": str(value),
            "rationale": f"After the updates {name} is {value}."}


@builtin_task(
    "prog_two_variables",
    cluster="program_execution",
    domains=("code",),
    definition="Execute the Python program with two variables and give what it prints.",
    templates=_PROGRAM_TEMPLATES,
)
def _prog_two_variables(rng, label):
    values = {"a": rng.randint(1, 9), "b": rng.randint(1, 9)}
    statements = [f"a = {values['a']}", f"b = {values['b']}"]
    for _ in range(rng.randint(1, 2)):
        target, other = rng.sample(("a", "b"), 2)
        op = rng.choice("+-")
        statements.append(f"{target} = {target} {op} {other}")
        values[target] = _apply(values[target], op, values[other])
    shown = rng.choice(("a", "b"))
    offset = rng.randint(1, 5)
    statements.append(f"print({shown} + {offset})")
    answer = values[shown] + offset
    return {"program": "; ".join(statements), "answer": str(answer),
            "rationale": f"At the end {shown} is {values[shown]}, and {values[shown]} + {offset} = {answer}."}


LIST_FUNCTIONS = {
    "max": lambda xs: str(max(xs)),
    "min": lambda xs: str(min(xs)),
    "len": lambda xs: str(len(xs)),
    "sum": lambda xs: str(sum(xs)),
    "sorted": lambda xs: str(sorted(xs)),
}


@builtin_task(
    "prog_list_function",
    cluster="program_execution",
    domains=("code",),
    definition="Execute the Python program that applies a built-in function (max, min, len, sum, sorted) "
    "or an index to a list, and give what it prints.",
    templates=_PROGRAM_TEMPLATES,
)
def _prog_list_function(rng, label):
    xs = [rng.randint(0, 20) for _ in range(rng.randint(3, 5))]
    function = rng.choice(sorted(LIST_FUNCTIONS) + ["index"])
    if function == "index":
        k = rng.randrange(len(xs))
        call, answer = f"xs[{k}]", str(xs[k])
    else:
        call, answer = f"{function}(xs)", LIST_FUNCTIONS[function](xs)
    return {"program": f"xs = {xs}; print({call})", "answer": answer,
            "rationale": f"{call} of {xs} is {answer}."}
