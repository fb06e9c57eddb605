"""Sentiment cluster: polarity from a lexicon with negation, contrast clauses, and emotions."""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import NAMES
from taskscope.tasks.core import Template

POSITIVE = ("great", "wonderful", "excellent", "lovely", "superb", "delightful", "charming", "brilliant", "pleasant", "fantastic")
NEGATIVE = ("awful", "terrible", "boring", "dull", "horrible", "dreadful", "poor", "disappointing", "bland", "annoying")
ASPECTS = ("food", "service", "music", "plot", "acting", "room", "staff", "view", "price", "ending", "story", "design")
SUBJECTS = ("film", "hotel", "restaurant", "book", "game", "concert", "cafe", "show")
POLARITY = ("positive", "negative")

_SENTIMENT_TEMPLATES = (
    Template("Review: {text}\nIs this review positive or negative?", "{label}"),
    Template("{text}\nWhat is the sentiment of this sentence? Options: positive, negative.", "{label}"),
    Template("Did the writer like it? Answer yes or no.\n{text}", "{label}",
             verbalizer={"label": {"positive": "yes", "negative": "no"}}),
    Template("Classify the opinion as good or bad: {text}", "{label}",
             verbalizer={"label": {"positive": "good", "negative": "bad"}}),
)


def _clause(rng, polarity: str, aspect: str) -> str:
    """A clause ``"the X was (not) ADJ"`` with the given polarity; negation flips the adjective's."""
    negate = rng.random() < 0.5
    lexicon_polarity = ("negative" if polarity == "positive" else "positive") if negate else polarity
    adjective = rng.choice(POSITIVE if lexicon_polarity == "positive" else NEGATIVE)
    return f"the {aspect} was {'not ' if negate else ''}{adjective}"


@builtin_task(
    "sentiment_negation",
    cluster="sentiment",
    domains=("reviews",),
    definition="Given a short review, decide whether the writer's opinion is positive or negative. "
    "The word 'not' reverses the meaning of the adjective after it.",
    templates=_SENTIMENT_TEMPLATES,
    labels=POLARITY,
)
def _sentiment_negation(rng, label):
    first, second = rng.sample(ASPECTS, 2)
    clause_a, clause_b = _clause(rng, label, first), _clause(rng, label, second)
    text = f"At this {rng.choice(SUBJECTS)}, {clause_a} and {clause_b}."
    return {"text": text, "label": label,
            "rationale": f"Both '{clause_a}' and '{clause_b}' express a {label} opinion."}


@builtin_task(
    "sentiment_contrast",
    cluster="sentiment",
    domains=("reviews",),
    definition="Given a review with two clauses joined by 'but', decide whether the overall opinion is positive "
    "or negative. The clause after 'but' decides the overall opinion.",
    templates=_SENTIMENT_TEMPLATES,
    labels=POLARITY,
)
def _sentiment_contrast(rng, label):
    other = "negative" if label == "positive" else "positive"
    first, second = rng.sample(ASPECTS, 2)
    opening, closing = _clause(rng, other, first), _clause(rng, label, second)
    text = f"{opening.capitalize()}, but {closing}."
    return {"text": text, "label": label,
            "rationale": f"The part after 'but', '{closing}', is {label}, so the review is {label}."}


EMOTIONS = {
    "joy": ("was delighted", "laughed happily", "cheered with joy", "smiled all day", "felt so happy"),
    "anger": ("was furious", "shouted angrily", "slammed the door", "felt so annoyed", "was outraged"),
    "fear": ("was terrified", "trembled with fear", "felt scared", "hid in panic", "was frightened"),
    "sadness": ("cried quietly", "felt so lonely", "was heartbroken", "sighed sadly", "felt miserable"),
}
EVENTS = ("when the letter arrived", "after the meeting", "during the storm", "at the station",
          "when the phone rang", "after the game", "at the party", "when the lights went out",
          "on the last day of school", "after reading the news")


@builtin_task(
    "sentiment_emotion",
    cluster="sentiment",
    domains=("fiction",),
    definition="Read a sentence about a person and name the emotion the person feels: joy, anger, fear or sadness.",
    templates=(
        Template("{text}\nWhich emotion is described: joy, anger, fear or sadness?", "{label}"),
        Template("Sentence: {text}\nEmotion:", "{label}"),
        Template("How does the person feel in this sentence? Choose joy, anger, fear or sadness.\n{text}", "{label}"),
    ),
    labels=tuple(EMOTIONS),
)
def _sentiment_emotion(rng, label):
    phrase = rng.choice(EMOTIONS[label])
    text = f"{rng.choice(NAMES)} {phrase} {rng.choice(EVENTS)}."
    return {"text": text, "label": label, "rationale": f"'{phrase}' describes {label}."}
