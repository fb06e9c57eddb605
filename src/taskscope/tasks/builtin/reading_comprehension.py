"""Reading comprehension cluster: attribute look-up, tracking a person's location, and who-gave-what."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import COLORS, NAMES
from taskscope.tasks.core import Template

_RC_TEMPLATES = (
    Template("{passage}\nQuestion: {question}\nAnswer:", "{answer}", outputs_field="answers"),
    Template("Read the text and answer the question.\nText: {passage}\nQuestion: {question}", "{answer}",
             outputs_field="answers"),
    Template("{question} Answer using this passage: {passage}", "{answer}", outputs_field="answers"),
)

OWNED = ("bike", "car", "hat", "kite", "boat", "scarf", "bag", "umbrella")


@builtin_task(
    "rc_attributes",
    cluster="reading_comprehension",
    domains=("stories",),
    definition="Read a short passage saying what colour each person's thing is, then answer the question "
    "about one of them with the colour.",
    templates=_RC_TEMPLATES,
)
def _rc_attributes(rng, label):
    people = rng.sample(NAMES, 3)
    things = rng.sample(OWNED, 3)
    colors = rng.sample(COLORS, 3)
    passage = " ".join(f"{p} has a {c} {t}." for p, c, t in zip(people, colors, things))
    k = rng.randrange(3)
    return {"passage": passage, "question": f"What colour is {people[k]}'s {things[k]}?", "answer": colors[k],
            "rationale": f"The passage says {people[k]} has a {colors[k]} {things[k]}."}


ROOMS = ("kitchen", "garden", "office", "bedroom", "hallway", "garage", "bathroom", "cellar")
MOVES = ("went to", "walked to", "ran to", "moved to", "travelled to")


@builtin_task(
    "rc_location",
    cluster="reading_comprehension",
    domains=("stories",),
    definition="Read a few sentences about people moving between rooms and answer where a person is now: "
    "a person is in the last room the passage sends them to.",
    templates=_RC_TEMPLATES,
)
def _rc_location(rng, label):
    people = rng.sample(NAMES, 2)
    where: dict[str, str] = {}
    sentences = []
    for _ in range(rng.randint(3, 4)):
        person, room = rng.choice(people), rng.choice(ROOMS)
        sentences.append(f"{person} {rng.choice(MOVES)} the {room}.")
        where[person] = room
    target = rng.choice(sorted(where))
    return {"passage": " ".join(sentences), "question": f"Where is {target}?", "answer": f"the {where[target]}",
            "answers": [f"the {where[target]}", where[target]],
            "rationale": f"The last room {target} went to is the {where[target]}."}


GIFTS = ("a book", "a pen", "a ticket", "an apple", "a letter", "a cake", "a map", "a ring", "a key", "a lamp")


@builtin_task(
    "rc_transfers",
    cluster="reading_comprehension",
    domains=("stories",),
    definition="Read who gave what to whom and answer the question with a name.",
    templates=_RC_TEMPLATES,
)
def _rc_transfers(rng, label):
    people = rng.sample(NAMES, 4)
    gifts = rng.sample(GIFTS, 2)
    events = [(people[0], gifts[0], people[1]), (people[2], gifts[1], people[3])]
    passage = " ".join(f"{giver} gave {gift} to {taker}." for giver, gift, taker in events)
    giver, gift, taker = rng.choice(events)
    if rng.random() < 0.5:
        question, answer = f"Who gave {gift} to {taker}?", giver
    else:
        question, answer = f"Who received {gift}?", taker
    return {"passage": passage, "question": question, "answer": answer,
            "rationale": f"The passage says {giver} gave {gift} to {taker}."}
