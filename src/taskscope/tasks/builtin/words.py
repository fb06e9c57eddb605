"""Word lists shared by the builtin tasks, written for this project (no external data)."""

from __future__ import annotations

FEMALE_NAMES = (
    "Anna", "Maria", "Lena", "Sofia", "Emma", "Clara", "Nora", "Julia", "Alice", "Rosa",
    "Ivy", "Mia", "Zoe", "Hannah", "Lucy", "Eva", "Grace", "Paula", "Irene", "Olivia",
)
MALE_NAMES = (
    "Tom", "Omar", "David", "Peter", "Lucas", "Hugo", "Felix", "Sam", "Carlos", "Ivan",
    "Ben", "Leo", "Jack", "Oscar", "Victor", "Paul", "Adam", "Noah", "Ryan", "Mark",
)
NAMES = FEMALE_NAMES + MALE_NAMES

COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "purple", "orange", "grey")

# (city, country) pairs, capitals only
CAPITALS = (
    ("Paris", "France"), ("Berlin", "Germany"), ("Madrid", "Spain"), ("Rome", "Italy"),
    ("Lisbon", "Portugal"), ("Vienna", "Austria"), ("Athens", "Greece"), ("Dublin", "Ireland"),
    ("Oslo", "Norway"), ("Stockholm", "Sweden"), ("Helsinki", "Finland"), ("Warsaw", "Poland"),
    ("Prague", "Czechia"), ("Budapest", "Hungary"), ("Cairo", "Egypt"), ("Nairobi", "Kenya"),
    ("Tokyo", "Japan"), ("Beijing", "China"), ("Seoul", "South Korea"), ("Bangkok", "Thailand"),
    ("Hanoi", "Vietnam"), ("Lima", "Peru"), ("Santiago", "Chile"), ("Ottawa", "Canada"),
    ("Canberra", "Australia"), ("Moscow", "Russia"), ("Ankara", "Turkey"), ("Tehran", "Iran"),
    ("Buenos Aires", "Argentina"), ("Copenhagen", "Denmark"), ("Brussels", "Belgium"), ("Bern", "Switzerland"),
)

# (city, country) pairs for non-capital cities, used for location inference
CITIES = CAPITALS + (
    ("Lyon", "France"), ("Munich", "Germany"), ("Seville", "Spain"), ("Milan", "Italy"),
    ("Porto", "Portugal"), ("Osaka", "Japan"), ("Shanghai", "China"), ("Busan", "South Korea"),
    ("Toronto", "Canada"), ("Sydney", "Australia"), ("Krakow", "Poland"), ("Bergen", "Norway"),
)

# hypernym -> hyponyms (each hyponym belongs to exactly one hypernym)
CATEGORIES = {
    "animal": ("dog", "cat", "horse", "rabbit", "goat", "sheep", "mouse", "duck"),
    "fruit": ("apple", "banana", "pear", "peach", "plum", "mango", "lemon", "cherry"),
    "vehicle": ("car", "bus", "truck", "bicycle", "tractor", "van", "scooter", "taxi"),
    "instrument": ("guitar", "violin", "piano", "drum", "flute", "trumpet", "harp", "cello"),
    "tool": ("hammer", "saw", "drill", "wrench", "shovel", "rake", "chisel", "ladder"),
}


def article(word: str) -> str:
    """``"an"`` before a vowel letter, else ``"a"``."""
    return "an" if word[0].lower() in "aeiou" else "a"


def plural(noun: str) -> str:
    """A regular English plural (enough for the nouns in these lists)."""
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"

