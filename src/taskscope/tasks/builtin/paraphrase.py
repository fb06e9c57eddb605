"""Paraphrase cluster: synonym substitution, active/passive voice, and rewriting into the passive."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import NAMES
from taskscope.tasks.core import Template

YES_NO = ("yes", "no")

# word -> (synonyms, words of different meaning)
ADJECTIVES = {
    "big": (("large", "huge"), ("small", "red", "quiet")),
    "happy": (("glad", "cheerful"), ("sad", "tired", "angry")),
    "fast": (("quick", "rapid"), ("slow", "heavy", "old")),
    "smart": (("clever", "bright"), ("lazy", "rude", "shy")),
    "quiet": (("silent", "calm"), ("loud", "busy", "wild")),
    "old": (("ancient", "aged"), ("new", "young", "modern")),
    "rich": (("wealthy", "affluent"), ("poor", "hungry", "kind")),
    "angry": (("furious", "mad"), ("calm", "pleased", "bored")),
}
VERBS = {
    "helped": (("assisted", "aided"), ("ignored", "blamed", "fooled")),
    "met": (("encountered",), ("avoided", "missed", "chased")),
    "praised": (("complimented", "applauded"), ("criticised", "scolded", "mocked")),
    "phoned": (("called", "rang"), ("ignored", "followed", "pushed")),
}
PEOPLE = ("neighbour", "teacher", "child", "singer", "driver", "farmer", "waiter", "pilot")

_PAIR_TEMPLATES = (
    Template("Sentence 1: {first}\nSentence 2: {second}\nDo these sentences mean the same thing?", "{label}"),
    Template("Is \"{second}\" a paraphrase of \"{first}\"? Answer yes or no.", "{label}"),
    Template("{first}\n{second}\nSame meaning or different meaning?", "{label}",
             verbalizer={"label": {"yes": "same", "no": "different"}}),
)


@builtin_task(
    "paraphrase_synonym",
    cluster="paraphrase",
    domains=("everyday life",),
    definition="Given two sentences, answer yes if they mean the same thing and no otherwise. "
    "Replacing a word by a synonym keeps the meaning; replacing it by a word of different meaning does not.",
    templates=_PAIR_TEMPLATES,
    labels=YES_NO,
)
def _paraphrase_synonym(rng, label):
    name, person = rng.choice(NAMES), rng.choice(PEOPLE)
    adjective = rng.choice(sorted(ADJECTIVES))
    verb = rng.choice(sorted(VERBS))
    changed = verb if rng.random() < 0.5 else adjective
    synonyms, others = VERBS[changed] if changed in VERBS else ADJECTIVES[changed]
    replacement = rng.choice(synonyms if label == "yes" else others)
    first = f"{name} {verb} the {adjective} {person}."
    second = first.replace(f" {changed} ", f" {replacement} ", 1)
    relation = "a synonym of" if label == "yes" else "not a synonym of"
    return {"first": first, "second": second, "label": label,
            "rationale": f"'{replacement}' is {relation} '{changed}'."}


ACTIONS = (("chased", "chase"), ("helped", "help"), ("called", "call"), ("followed", "follow"),
           ("pushed", "push"), ("visited", "visit"), ("thanked", "thank"), ("watched", "watch"))


@builtin_task(
    "paraphrase_voice",
    cluster="paraphrase",
    domains=("grammar",),
    definition="Given an active sentence and a passive sentence, answer yes if they describe the same event "
    "(the same person does the action to the same person) and no otherwise.",
    templates=_PAIR_TEMPLATES,
    labels=YES_NO,
)
def _paraphrase_voice(rng, label):
    agent, patient = rng.sample(NAMES, 2)
    verb, _ = rng.choice(ACTIONS)
    first = f"{agent} {verb} {patient}."
    by, subject = (agent, patient) if label == "yes" else (patient, agent)
    second = f"{subject} was {verb} by {by}."
    said = f"the second says {by} {verb} {subject}"
    return {"first": first, "second": second, "label": label,
            "rationale": f"The first sentence says {agent} {verb} {patient}; {said}."}


@builtin_task(
    "paraphrase_to_passive",
    cluster="paraphrase",
    domains=("grammar",),
    definition="Rewrite the given active sentence in the passive voice without changing its meaning.",
    templates=(
        Template("Rewrite in the passive voice: {sentence}", "{answer}"),
        Template("Active: {sentence}\nPassive:", "{answer}"),
        Template("{sentence}\nSay the same thing, starting with \"{patient}\".", "{answer}"),
    ),
)
def _paraphrase_to_passive(rng, label):
    agent, patient = rng.sample(NAMES, 2)
    verb, _ = rng.choice(ACTIONS)
    adverb = rng.choice(("", "", " yesterday", " today", " again"))
    return {"sentence": f"{agent} {verb} {patient}{adverb}.", "patient": patient,
            "answer": f"{patient} was {verb} by {agent}{adverb}.",
            "rationale": f"The object {patient} becomes the subject and the doer {agent} follows 'by'."}
