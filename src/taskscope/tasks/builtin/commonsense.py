"""Commonsense cluster: object purposes, size comparison, and the order of days, months and meals."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import article
from taskscope.tasks.core import Template

# purpose -> objects that serve it (no object serves two purposes)
PURPOSES = {
    "cut paper": ("scissors", "a knife"),
    "write a letter": ("a pen", "a pencil"),
    "drink tea": ("a cup", "a mug"),
    "sweep the floor": ("a broom",),
    "tell the time": ("a clock", "a watch"),
    "dig a hole": ("a shovel", "a spade"),
    "keep dry in the rain": ("an umbrella", "a raincoat"),
    "see in the dark": ("a torch", "a lamp"),
    "open a locked door": ("a key",),
    "boil water": ("a kettle", "a pot"),
    "cross a river": ("a boat", "a bridge"),
    "take a photo": ("a camera",),
    "hit a nail": ("a hammer",),
    "sleep at night": ("a bed",),
}


@builtin_task(
    "commonsense_tools",
    cluster="commonsense",
    domains=("everyday life",),
    definition="Given a goal and two or three objects, choose the object that is used to reach the goal.",
    templates=(
        Template("Which would you use to {purpose}: {options}?", "{answer}"),
        Template("Goal: {purpose}\nOptions: {options}\nBest choice:", "{answer}"),
        Template("I need to {purpose}. Should I use {options}?", "{answer}"),
    ),
)
def _commonsense_tools(rng, label):
    purpose, *distractor_purposes = rng.sample(sorted(PURPOSES), rng.choice((2, 3)))
    answer = rng.choice(PURPOSES[purpose])
    choices = [answer] + [rng.choice(PURPOSES[p]) for p in distractor_purposes]
    rng.shuffle(choices)
    options = ", ".join(choices[:-1]) + " or " + choices[-1]
    return {"purpose": purpose, "options": options, "answer": answer,
            "rationale": f"People use {answer} to {purpose}."}


# from lightest / smallest to heaviest / largest; only things at least two places apart are compared
SIZES = ("ant", "coin", "mouse", "apple", "shoe", "cat", "chair", "dog", "bicycle", "horse",
         "car", "elephant", "bus", "whale", "ship", "mountain")


@builtin_task(
    "commonsense_size",
    cluster="commonsense",
    domains=("physical world",),
    definition="Given two things, answer which one is bigger or which one is smaller, as asked.",
    templates=(
        Template("Which is {comparative}, {article_a} {thing_a} or {article_b} {thing_b}?", "{answer}"),
        Template("{Comparative}: the {thing_a} or the {thing_b}?", "{answer}"),
        Template("Think about real sizes. Between {article_a} {thing_a} and {article_b} {thing_b}, which one is "
                 "{comparative}?", "{answer}"),
    ),
)
def _commonsense_size(rng, label):
    thing_a, thing_b = rng.sample(SIZES, 2)
    while abs(SIZES.index(thing_a) - SIZES.index(thing_b)) < 2:  # neighbours can be close calls
        thing_a, thing_b = rng.sample(SIZES, 2)
    comparative = rng.choice(("bigger", "smaller", "heavier", "lighter"))
    larger = thing_a if SIZES.index(thing_a) > SIZES.index(thing_b) else thing_b
    smaller = thing_b if larger == thing_a else thing_a
    answer = larger if comparative in ("bigger", "heavier") else smaller
    return {"thing_a": thing_a, "thing_b": thing_b, "article_a": article(thing_a), "article_b": article(thing_b),
            "comparative": comparative, "Comparative": comparative.capitalize(), "answer": answer,
            "rationale": f"{article(larger).capitalize()} {larger} is bigger and heavier than {article(smaller)} {smaller}."}


SEQUENCES = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"),
    "season": ("spring", "summer", "autumn", "winter"),
    "meal": ("breakfast", "lunch", "dinner"),
}


@builtin_task(
    "commonsense_order",
    cluster="commonsense",
    domains=("time",),
    definition="Answer which day, month, season or meal comes one or two places after or before the given one. "
    "Days, months and seasons wrap around (after Sunday comes Monday); the meals of one day do not.",
    templates=(
        Template("What {kind} comes {step} {direction} {item}?", "{answer}"),
        Template("Question: Which {kind} is {step} {direction} {item}?\nAnswer:", "{answer}"),
        Template("Name the {kind} that comes {step} {direction} {item}.", "{answer}"),
    ),
    finite=True,
)
def _commonsense_order(rng, label):
    kind = rng.choice(sorted(SEQUENCES))
    sequence = SEQUENCES[kind]
    direction = rng.choice(("after", "before"))
    step = rng.choice((1, 2)) * (1 if direction == "after" else -1)
    if kind == "meal":  # no wrap-around: only steps that stay inside the day
        step = 1 if direction == "after" else -1
        position = rng.randrange(len(sequence) - 1) + (0 if step > 0 else 1)
    else:
        position = rng.randrange(len(sequence))
    item, answer = sequence[position], sequence[(position + step) % len(sequence)]
    distance = "right" if abs(step) == 1 else f"two {kind}s"
    return {"kind": kind, "step": distance, "direction": direction, "item": item, "answer": answer,
            "rationale": f"In the order of {kind}s, {answer} comes {distance} {direction} {item}."}
