"""Closed-book QA cluster: capitals, opposites and animal facts, answered from memory.

These tasks have a finite set of facts (a few dozen to a few hundred distinct questions), so
with many instances questions repeat; that is what closed-book QA is.
"""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import CAPITALS, article
from taskscope.tasks.core import Template


@builtin_task(
    "qa_capitals",
    cluster="closed_book_qa",
    domains=("geography",),
    definition="Answer the question about a country and its capital city with the name of the city or country.",
    templates=(
        Template("Question: {question}\nAnswer:", "{answer}"),
        Template("Answer this geography question in a few words. {question}", "{answer}"),
        Template("{question}", "{answer}"),
    ),
    finite=True,
)
def _qa_capitals(rng, label):
    city, country = rng.choice(CAPITALS)
    if rng.random() < 0.5:
        question, answer = f"What is the capital of {country}?", city
    else:
        question, answer = f"{city} is the capital of which country?", country
    return {"question": question, "answer": answer,
            "rationale": f"{city} is the capital of {country}."}


# word -> acceptable opposites (the first is the main one)
OPPOSITES = {
    "hot": ("cold",), "big": ("small", "little"), "fast": ("slow",), "happy": ("sad", "unhappy"),
    "old": ("young", "new"), "tall": ("short",), "early": ("late",), "open": ("closed", "shut"),
    "light": ("dark", "heavy"), "full": ("empty",), "rich": ("poor",), "strong": ("weak",),
    "wet": ("dry",), "loud": ("quiet", "soft"), "easy": ("hard", "difficult"), "clean": ("dirty",),
    "up": ("down",), "inside": ("outside",), "win": ("lose",), "buy": ("sell",), "push": ("pull",),
    "begin": ("end", "finish"), "love": ("hate",), "remember": ("forget",), "arrive": ("leave", "depart"),
    "above": ("below", "under"), "day": ("night",), "north": ("south",), "east": ("west",),
    "always": ("never",), "thick": ("thin",), "cheap": ("expensive",), "safe": ("dangerous",),
    "true": ("false",), "friend": ("enemy",), "first": ("last",), "give": ("take",), "near": ("far",),
}


@builtin_task(
    "qa_opposites",
    cluster="closed_book_qa",
    domains=("vocabulary",),
    definition="Give a word that means the opposite of the given word.",
    templates=(
        Template("What is the opposite of \"{word}\"?", "{answer}", outputs_field="answers"),
        Template("Word: {word}\nAntonym:", "{answer}", outputs_field="answers"),
        Template("Name a word with the opposite meaning of {word}.", "{answer}", outputs_field="answers"),
    ),
    finite=True,
)
def _qa_opposites(rng, label):
    word = rng.choice(sorted(OPPOSITES))
    answers = list(OPPOSITES[word])
    return {"word": word, "answer": answers[0], "answers": answers,
            "rationale": f"'{answers[0]}' means the opposite of '{word}'."}


# animal -> (sound, young, legs)
ANIMALS = {
    "dog": ("bark", "puppy", 4), "cat": ("meow", "kitten", 4), "cow": ("moo", "calf", 4),
    "sheep": ("baa", "lamb", 4), "horse": ("neigh", "foal", 4), "duck": ("quack", "duckling", 2),
    "pig": ("oink", "piglet", 4), "lion": ("roar", "cub", 4), "owl": ("hoot", "owlet", 2),
    "goat": ("bleat", "kid", 4), "frog": ("croak", "tadpole", 4), "hen": ("cluck", "chick", 2), "mouse": ("squeak", "pup", 4),
    "goose": ("honk", "gosling", 2), "bear": ("growl", "cub", 4), "chicken": ("cluck", "chick", 2),
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


@builtin_task(
    "qa_animals",
    cluster="closed_book_qa",
    domains=("biology",),
    definition="Answer the question about a common animal: the sound it makes, the name of its young, "
    "or its number of legs.",
    templates=(
        Template("Question: {question}\nAnswer:", "{answer}", outputs_field="answers"),
        Template("{question} Answer in one word.", "{answer}", outputs_field="answers"),
        Template("Animal quiz. {question}", "{answer}", outputs_field="answers"),
    ),
    finite=True,
)
def _qa_animals(rng, label):
    animal = rng.choice(sorted(ANIMALS))
    sound, young, legs = ANIMALS[animal]
    kind = rng.choice(("sound", "young", "legs"))
    if kind == "sound":
        question, answers = f"What sound does {article(animal)} {animal} make?", [sound]
    elif kind == "young":
        question, answers = f"What is a baby {animal} called?", [young]
    else:
        question, answers = f"How many legs does {article(animal)} {animal} have?", [str(legs), NUMBER_WORDS[legs]]
    return {"question": question, "answer": answers[0], "answers": answers,
            "rationale": f"The answer about the {animal} is {answers[0]}."}
