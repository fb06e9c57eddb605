"""Translation-like cluster: an invented word-substitution language ("Zorbic") both ways, and Pig Latin.

Zorbic replaces every English word by its dictionary word and puts adjectives *after* their noun:
``the small dog sees the cat`` -> ``ka miro vask tolen ka pim``.  The dictionary is one-to-one,
so the mapping is invertible.
"""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.core import Template

ZORBIC_NOUNS = {"dog": "miro", "cat": "pim", "bird": "talu", "child": "neko", "farmer": "gurd",
                "king": "oban", "fish": "sela", "horse": "dravo", "teacher": "lumi", "friend": "kesa"}
ZORBIC_VERBS = {"sees": "tolen", "likes": "amar", "follows": "sudra", "calls": "vokan", "helps": "ilsa",
                "finds": "rapen", "feeds": "mumo", "paints": "kolar"}
ZORBIC_ADJECTIVES = {"small": "vask", "big": "gron", "happy": "lira", "old": "tesh", "red": "rubo",
                     "quiet": "silo", "brave": "kordo", "hungry": "fami"}
ZORBIC_ARTICLE = {"the": "ka"}
ZORBIC = {**ZORBIC_NOUNS, **ZORBIC_VERBS, **ZORBIC_ADJECTIVES, **ZORBIC_ARTICLE}


def _noun_phrase(rng) -> tuple[str, str]:
    """An English noun phrase and its Zorbic translation (adjective moved after the noun)."""
    noun = rng.choice(sorted(ZORBIC_NOUNS))
    if rng.random() < 0.5:
        adjective = rng.choice(sorted(ZORBIC_ADJECTIVES))
        return f"the {adjective} {noun}", f"ka {ZORBIC[noun]} {ZORBIC[adjective]}"
    return f"the {noun}", f"ka {ZORBIC[noun]}"


def _sentence_pair(rng) -> tuple[str, str]:
    subject_en, subject_zo = _noun_phrase(rng)
    object_en, object_zo = _noun_phrase(rng)
    verb = rng.choice(sorted(ZORBIC_VERBS))
    return f"{subject_en} {verb} {object_en}", f"{subject_zo} {ZORBIC[verb]} {object_zo}"


_ZORBIC_RULE = ("Zorbic uses its own word for every English word (the = ka, dog = miro, sees = tolen, small = vask, "
                "...) and puts each adjective after its noun.")


@builtin_task(
    "translate_en_zorbic",
    cluster="translation",
    domains=("invented language",),
    definition=f"Translate the English sentence into Zorbic, an invented language. {_ZORBIC_RULE}",
    templates=(
        Template("Translate to Zorbic: {english}", "{zorbic}"),
        Template("English: {english}\nZorbic:", "{zorbic}"),
        Template("How do you say \"{english}\" in Zorbic?", "{zorbic}"),
    ),
)
def _translate_en_zorbic(rng, label):
    english, zorbic = _sentence_pair(rng)
    return {"english": english, "zorbic": zorbic, "rationale": "Each word is replaced; adjectives follow nouns."}


@builtin_task(
    "translate_zorbic_en",
    cluster="translation",
    domains=("invented language",),
    definition=f"Translate the Zorbic sentence into English. {_ZORBIC_RULE}",
    templates=(
        Template("Translate to English: {zorbic}", "{english}"),
        Template("Zorbic: {zorbic}\nEnglish:", "{english}"),
        Template("What does the Zorbic sentence \"{zorbic}\" mean in English?", "{english}"),
    ),
)
def _translate_zorbic_en(rng, label):
    english, zorbic = _sentence_pair(rng)
    return {"english": english, "zorbic": zorbic, "rationale": "Each word is replaced; adjectives go before nouns."}


PIG_LATIN_WORDS = ("apple", "banana", "cherry", "dog", "egg", "friend", "green", "house", "island", "jump",
                   "kite", "lemon", "moon", "night", "orange", "paper", "queen", "river", "stone", "table",
                   "under", "voice", "water", "yellow", "zebra", "bread", "chair", "smile", "train", "glass")


def pig_latin(word: str) -> str:
    """Vowel-initial words get ``way``; otherwise the leading consonants move to the end, then ``ay``."""
    if word[0] in "aeiou":
        return word + "way"
    cut = next((i for i, letter in enumerate(word) if letter in "aeiou"), len(word))
    if word[cut - 1 : cut + 1] == "qu":  # "queen" -> "eenquay"
        cut += 1
    return word[cut:] + word[:cut] + "ay"


@builtin_task(
    "translate_pig_latin",
    cluster="translation",
    domains=("word games",),
    definition="Translate the words into Pig Latin: a word starting with a vowel gets 'way' added; otherwise "
    "its leading consonants move to the end of the word, followed by 'ay'.",
    templates=(
        Template("Translate into Pig Latin: {text}", "{answer}"),
        Template("English: {text}\nPig Latin:", "{answer}"),
        Template("Say \"{text}\" in Pig Latin.", "{answer}"),
    ),
)
def _translate_pig_latin(rng, label):
    words = rng.sample(PIG_LATIN_WORDS, rng.randint(1, 3))
    answer = " ".join(pig_latin(w) for w in words)
    return {"text": " ".join(words), "answer": answer,
            "rationale": f"{words[0]} becomes {pig_latin(words[0])}; the other words follow the same rule."}
