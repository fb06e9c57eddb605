"""Natural language inference cluster: hypernyms, numeric bounds, and city-in-country locations."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import CATEGORIES, CITIES, COLORS, NAMES, article
from taskscope.tasks.core import Template

NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")

VERBS = ("is holding", "is looking at", "is drawing", "is carrying", "is cleaning", "is buying")

_THREE_WAY_TEMPLATES = (
    Template("Premise: {premise}\nHypothesis: {hypothesis}\nEntailment, neutral or contradiction?", "{label}"),
    Template("{premise} Based on this, is it true that \"{hypothesis}\"? Answer yes, maybe or no.", "{label}",
             verbalizer={"label": {"entailment": "yes", "neutral": "maybe", "contradiction": "no"}}),
    Template("Given \"{premise}\", must \"{hypothesis}\" be true, might it be true, or must it be false?", "{label}",
             verbalizer={"label": {"entailment": "must be true", "neutral": "might be true",
                                   "contradiction": "must be false"}}),
)
_TWO_WAY_TEMPLATES = (
    Template("Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis?", "{label}"),
    Template("{premise}\nQuestion: does it follow that {hypothesis_question} Yes or no?", "{label}",
             verbalizer={"label": {"entailment": "yes", "not_entailment": "no"}}),
    Template("If \"{premise}\" is true, is \"{hypothesis}\" also true? Answer true or false.", "{label}",
             verbalizer={"label": {"entailment": "true", "not_entailment": "false"}}),
)


@builtin_task(
    "nli_hypernym",
    cluster="nli",
    domains=("everyday life",),
    definition="Decide whether the hypothesis follows from the premise (entailment), contradicts it "
    "(contradiction), or could be either (neutral). A dog is an animal, so holding a dog entails holding an animal; "
    "a dog is not a cat; a colour that the premise does not mention is neutral.",
    templates=_THREE_WAY_TEMPLATES,
    labels=NLI3,
)
def _nli_hypernym(rng, label):
    name, verb = rng.choice(NAMES), rng.choice(VERBS)
    category = rng.choice(sorted(CATEGORIES))
    thing, other = rng.sample(CATEGORIES[category], 2)
    premise = f"{name} {verb} {article(thing)} {thing}."
    if label == "entailment":
        hypothesis, why = f"{name} {verb} {article(category)} {category}.", f"a {thing} is a kind of {category}"
    elif label == "contradiction":
        hypothesis, why = f"{name} {verb} {article(other)} {other}.", f"a {thing} is not a {other}"
    else:
        color = rng.choice(COLORS)
        hypothesis, why = f"{name} {verb} {article(color)} {color} {thing}.", "the premise does not say the colour"
    return {"premise": premise, "hypothesis": hypothesis, "label": label, "rationale": f"It is {label}: {why}."}


ITEMS = ("apples", "books", "tickets", "eggs", "stamps", "pencils", "cookies", "shells", "coins", "cards")
ACTS = ("bought", "found", "sold", "collected", "baked", "counted", "painted", "lost")


@builtin_task(
    "nli_numbers",
    cluster="nli",
    domains=("numbers",),
    definition="Decide whether the hypothesis about a quantity follows from the premise (entailment) or not "
    "(not_entailment). Compare the exact number in the premise with the bound in the hypothesis.",
    templates=_TWO_WAY_TEMPLATES,
    labels=NLI2,
)
def _nli_numbers(rng, label):
    name, item, act = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(ACTS)
    count = rng.randint(2, 19)
    relation = rng.choice(("more than", "fewer than", "exactly"))
    holds = label == "entailment"
    if relation == "exactly":
        bound = count if holds else count + rng.choice((-1, 1)) * rng.randint(1, min(3, count - 1))
    elif relation == "more than":
        bound = count - rng.randint(1, count - 1) if holds else count + rng.randint(0, 5)
    else:
        bound = count + rng.randint(1, 6) if holds else count - rng.randint(0, count - 1)
    hypothesis = f"{name} {act} {relation} {bound} {item}."
    verdict = "so" if holds else "so it does not follow that"
    return {"premise": f"{name} {act} {count} {item}.", "hypothesis": hypothesis,
            "hypothesis_question": hypothesis[:-1] + "?", "label": label,
            "rationale": f"{count} is the exact number, {verdict} it is {relation} {bound}."}


PLACE_VERBS = ("lives in", "works in", "was born in", "is staying in")


@builtin_task(
    "nli_location",
    cluster="nli",
    domains=("geography",),
    definition="Decide whether the hypothesis follows from the premise (entailment) or not (not_entailment). "
    "Being in a city means being in the country of that city, and in no other country.",
    templates=_TWO_WAY_TEMPLATES,
    labels=NLI2,
)
def _nli_location(rng, label):
    name, verb = rng.choice(NAMES), rng.choice(PLACE_VERBS)
    city, country = rng.choice(CITIES)
    if label == "entailment":
        claimed = country
    else:
        claimed = rng.choice(sorted({c for _, c in CITIES} - {country}))
    return {"premise": f"{name} {verb} {city}.", "hypothesis": f"{name} {verb} {claimed}.",
            "hypothesis_question": f"{name} {verb} {claimed}?", "label": label,
            "rationale": f"{city} is in {country}, so the claim about {claimed} is {label.replace('_', ' ')}."}
