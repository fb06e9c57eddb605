"""Coreference cluster: pronouns resolved by gender, by number, and by a fits-inside size rule."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import FEMALE_NAMES, MALE_NAMES, plural
from taskscope.tasks.core import Template

REASONS = (
    ("called", "because {pronoun} needed help with the homework"),
    ("thanked", "because {pronoun} had received a lovely gift"),
    ("visited", "because {pronoun} felt lonely at home"),
    ("met", "after {pronoun} finished work"),
    ("waved at", "while {pronoun} was crossing the street"),
    ("emailed", "because {pronoun} had a question about the trip"),
    ("waited for", "until {pronoun} got tired"),
)

_WHO_TEMPLATES = (
    Template("{sentence}\nWho does \"{pronoun}\" refer to?", "{answer}"),
    Template("Sentence: {sentence}\nQuestion: In this sentence, who is \"{pronoun}\"?\nAnswer:", "{answer}"),
    Template("Resolve the pronoun \"{pronoun}\" in: {sentence}", "{answer}"),
)


@builtin_task(
    "coref_gender",
    cluster="coreference",
    domains=("everyday life",),
    definition="A sentence mentions a woman and a man and then uses 'she' or 'he'. Answer with the name of "
    "the person the pronoun refers to: 'she' refers to the woman and 'he' to the man.",
    templates=_WHO_TEMPLATES,
)
def _coref_gender(rng, label):
    woman, man = rng.choice(FEMALE_NAMES), rng.choice(MALE_NAMES)
    first, second = (woman, man) if rng.random() < 0.5 else (man, woman)
    pronoun = rng.choice(("she", "he"))
    verb, reason = rng.choice(REASONS)
    sentence = f"{first} {verb} {second} {reason.format(pronoun=pronoun)}."
    answer = woman if pronoun == "she" else man
    return {"sentence": sentence, "pronoun": pronoun, "answer": answer,
            "rationale": f"'{pronoun}' refers to {answer}, the only {'woman' if pronoun == 'she' else 'man'}."}


ANIMALS = ("dog", "cat", "fox", "rabbit", "lamb", "horse", "puppy", "kitten", "duck", "pony")
ACTIONS = (("chased", "because {pronoun} {be} hungry"), ("followed", "because {pronoun} {be} curious"),
           ("watched", "because {pronoun} {be} bored"), ("barked at", "because {pronoun} {be} scared"),
           ("ran from", "because {pronoun} {be} frightened"))


@builtin_task(
    "coref_number",
    cluster="coreference",
    domains=("animals",),
    definition="A sentence mentions one animal and a group of animals and then uses 'it' or 'they'. "
    "Answer which animals the pronoun refers to: 'it' is the single animal, 'they' the group.",
    templates=_WHO_TEMPLATES,
)
def _coref_number(rng, label):
    single, group = rng.sample(ANIMALS, 2)
    group_noun = plural(group)
    pronoun = rng.choice(("it", "they"))
    verb, reason = rng.choice(ACTIONS)
    a, b = (f"The {single}", f"the {group_noun}") if rng.random() < 0.5 else (f"The {group_noun}", f"the {single}")
    sentence = f"{a} {verb} {b} {reason.format(pronoun=pronoun, be='was' if pronoun == 'it' else 'were')}."
    answer = f"the {single}" if pronoun == "it" else f"the {group_noun}"
    return {"sentence": sentence, "pronoun": pronoun, "answer": answer,
            "rationale": f"'{pronoun}' is {'singular' if pronoun == 'it' else 'plural'}, so it means {answer}."}


ITEMS = ("trophy", "book", "guitar", "laptop", "painting", "lamp", "pillow", "helmet", "camera", "vase")
CONTAINERS = ("suitcase", "box", "bag", "drawer", "basket", "backpack", "cupboard", "case", "crate", "locker")


@builtin_task(
    "coref_fit",
    cluster="coreference",
    domains=("physical world",),
    definition="A sentence says an object did not fit into a container because 'it' was too big or too small. "
    "Answer what 'it' refers to: the object when 'big', the container when 'small'.",
    templates=(
        Template("{sentence}\nWhat was too {size}?", "{answer}"),
        Template("Sentence: {sentence}\nIn this sentence, what does \"it\" refer to?", "{answer}"),
        Template("{sentence} Which thing was too {size}: the {item} or the {container}?", "{answer}"),
    ),
)
def _coref_fit(rng, label):
    item, container = rng.choice(ITEMS), rng.choice(CONTAINERS)
    size = rng.choice(("big", "small"))
    sentence = f"The {item} did not fit into the {container} because it was too {size}."
    answer = f"the {item}" if size == "big" else f"the {container}"
    return {"sentence": sentence, "size": size, "item": item, "container": container, "answer": answer,
            "rationale": f"A thing fails to fit when it is too big or its container too small, so 'it' is {answer}."}
