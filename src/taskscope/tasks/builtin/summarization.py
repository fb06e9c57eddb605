"""Summarisation cluster: news headlines, dialogue summaries and sentence compression."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import CITIES, NAMES
from taskscope.tasks.core import Template

# actor, verb (past), verb (headline present), object
NEWS = (
    ("council", "voted to build", "approves", "a new bridge"),
    ("school", "decided to open", "opens", "a science lab"),
    ("museum", "announced it will close", "closes", "its east wing"),
    ("hospital", "agreed to hire", "hires", "forty nurses"),
    ("library", "started to lend", "lends", "electric bikes"),
    ("zoo", "welcomed", "welcomes", "two baby pandas"),
    ("football club", "signed", "signs", "a young striker"),
    ("bakery", "won", "wins", "a national prize"),
)
DETAILS = ("The decision came after months of debate.", "Local people were pleased.",
           "The plan will cost about two million.", "Work is expected to start in spring.",
           "A spokesperson confirmed the news on Monday.", "Some residents had asked for this for years.")


@builtin_task(
    "summ_headline",
    cluster="summarization",
    domains=("news",),
    definition="Write a short headline that states the main event of the news text.",
    templates=(
        Template("{article}\nWrite a headline for this article.", "{answer}", outputs_field="answers"),
        Template("Article: {article}\nHeadline:", "{answer}", outputs_field="answers"),
        Template("Summarise in a few words: {article}", "{answer}", outputs_field="answers"),
    ),
)
def _summ_headline(rng, label):
    city, _ = rng.choice(CITIES)
    actor, past, present, thing = rng.choice(NEWS)
    details = rng.sample(DETAILS, 2)
    article = f"The {actor} of {city} {past} {thing}. {details[0]} {details[1]}"
    answers = [f"{city} {actor} {present} {thing}", f"{city} {actor} {past} {thing}"]
    return {"article": article, "answer": answers[0], "answers": answers,
            "rationale": "The first sentence holds the main event; the rest are details."}


# request, what is brought, reply that accepts
REQUESTS = (("Can you bring the cake", "the cake"), ("Could you buy some milk", "milk"),
            ("Will you pick up the tickets", "the tickets"), ("Can you bring your guitar", "a guitar"),
            ("Could you get some bread", "bread"), ("Can you bring the map", "the map"))
TIMES = ("tomorrow", "tonight", "on Saturday", "after work", "this evening", "at noon")
REPLIES = ("Sure, no problem.", "Yes, I will.", "Of course!", "Okay, I can do that.")


@builtin_task(
    "summ_dialogue",
    cluster="summarization",
    domains=("dialogue",),
    definition="Summarise the short dialogue in one sentence saying who will bring what and when.",
    templates=(
        Template("{dialogue}\nSummarise the dialogue in one sentence.", "{answer}", outputs_field="answers"),
        Template("Dialogue:\n{dialogue}\nSummary:", "{answer}", outputs_field="answers"),
        Template("What did they agree on? {dialogue}", "{answer}", outputs_field="answers"),
    ),
)
def _summ_dialogue(rng, label):
    asker, helper = rng.sample(NAMES, 2)
    request, thing = rng.choice(REQUESTS)
    when = rng.choice(TIMES)
    dialogue = f"{asker}: {request} {when}?\n{helper}: {rng.choice(REPLIES)}"
    answers = [f"{helper} will bring {thing} {when}.", f"{helper} agreed to bring {thing} {when}."]
    return {"dialogue": dialogue, "answer": answers[0], "answers": answers,
            "rationale": f"{asker} asks and {helper} agrees, so {helper} will bring {thing}."}


ADJECTIVES = ("tall", "old", "young", "tired", "cheerful", "quiet", "busy", "friendly")
ADVERBS = ("quickly", "slowly", "happily", "carefully", "finally", "proudly")
OBJECT_ADJECTIVES = ("blue", "small", "heavy", "new", "broken", "wooden", "shiny")
OBJECTS = ("car", "bike", "table", "piano", "boat", "lamp", "clock")
VERBS = ("sold", "painted", "fixed", "bought", "cleaned", "moved")
OPENERS = ("Yesterday,", "Last week,", "On Sunday,", "After lunch,", "In the morning,")
PLACES = ("in town", "at home", "near the river", "at the market", "in the garage")


@builtin_task(
    "summ_compress",
    cluster="summarization",
    domains=("news",),
    definition="Shorten the sentence to its core: keep who did what to what, and drop the time, the place, "
    "the adjectives and the adverbs.",
    templates=(
        Template("Compress this sentence: {sentence}", "{answer}"),
        Template("{sentence}\nShort version:", "{answer}"),
        Template("Remove every detail that is not needed: {sentence}", "{answer}"),
    ),
)
def _summ_compress(rng, label):
    noun = rng.choice(("man", "woman", "teacher", "farmer", "girl", "boy", "doctor"))
    adjective, adverb = rng.choice(ADJECTIVES), rng.choice(ADVERBS)
    verb, obj, obj_adj = rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(OBJECT_ADJECTIVES)
    possessive = rng.choice(("the", {"woman": "her", "girl": "her", "man": "his", "boy": "his"}.get(noun, "the")))
    sentence = (f"{rng.choice(OPENERS)} the {adjective} {noun} {adverb} {verb} {possessive} {obj_adj} {obj} "
                f"{rng.choice(PLACES)}.")
    answer = f"The {noun} {verb} {possessive} {obj}."
    return {"sentence": sentence, "answer": answer, "rationale": f"Only '{answer}' carries the core event."}

