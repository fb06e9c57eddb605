"""Struct-to-text cluster (FLAN's data-to-text): restaurants, weather reports and people, as sentences.

Every record has several reference sentences (``answers``), one per accepted phrasing.
"""

from __future__ import annotations

from taskscope.tasks.builtin.base import builtin_task
from taskscope.tasks.builtin.words import CITIES, FEMALE_NAMES, MALE_NAMES, article
from taskscope.tasks.core import Template

FIRST = ("The", "Blue", "Golden", "Little", "Old", "Green", "Red", "Silver", "Happy", "Hidden")
SECOND = ("Fox", "Lantern", "Spoon", "Oak", "Harbour", "Kettle", "Garden", "Mill", "Anchor", "Olive")
FOODS = ("Italian", "Indian", "Chinese", "French", "Greek", "Mexican", "Thai", "Japanese")
PRICES = ("cheap", "moderately priced", "expensive")


@builtin_task(
    "d2t_restaurant",
    cluster="struct_to_text",
    domains=("restaurants",),
    definition="Write one sentence that states every attribute of the restaurant given as name[value] pairs.",
    templates=(
        Template("name[{name}], food[{food}], price[{price}]\nDescribe this restaurant in one sentence.", "{answer}",
                 outputs_field="answers"),
        Template("Turn the data into a sentence: name = {name}; cuisine = {food}; price = {price}", "{answer}",
                 outputs_field="answers"),
        Template("Restaurant: {name} | Food: {food} | Price range: {price}\nSentence:", "{answer}",
                 outputs_field="answers"),
    ),
)
def _d2t_restaurant(rng, label):
    name = f"{rng.choice(FIRST)} {rng.choice(SECOND)}"
    food, price = rng.choice(FOODS), rng.choice(PRICES)
    answers = [f"{name} is {article(price)} {price} {food} restaurant.",
               f"{name} serves {price} {food} food.",
               f"{name} is a {food} restaurant that is {price}."]
    return {"name": name, "food": food, "price": price, "answer": answers[0], "answers": answers,
            "rationale": "The sentence names the restaurant, its food and its price range."}


SKIES = ("sunny", "rainy", "cloudy", "windy", "snowy", "foggy")
DAYS = ("today", "tomorrow", "on Monday", "on Friday", "on Sunday", "tonight")


@builtin_task(
    "d2t_weather",
    cluster="struct_to_text",
    domains=("weather",),
    definition="Write one sentence of a weather report from the city, the time, the sky and the temperature.",
    templates=(
        Template("city: {city} | when: {when} | sky: {sky} | temperature: {temp}\nReport:", "{answer}",
                 outputs_field="answers"),
        Template("Write a weather sentence for {city} ({when}): {sky}, {temp} degrees.", "{answer}",
                 outputs_field="answers"),
        Template("Data: [{city}, {when}, {sky}, {temp}C]\nTurn this weather data into a sentence.", "{answer}",
                 outputs_field="answers"),
    ),
)
def _d2t_weather(rng, label):
    city, _ = rng.choice(CITIES)
    when, sky, temp = rng.choice(DAYS), rng.choice(SKIES), rng.randint(-5, 35)
    answers = [f"{sky.capitalize()} and {temp} degrees in {city} {when}.",
               f"{city} will be {sky} with {temp} degrees {when}.",
               f"Expect {sky} weather and {temp} degrees in {city} {when}."]
    return {"city": city, "when": when, "sky": sky, "temp": temp, "answer": answers[0], "answers": answers,
            "rationale": "The report states the sky, the temperature, the city and the time."}


JOBS = ("doctor", "teacher", "painter", "engineer", "baker", "pilot", "farmer", "lawyer", "nurse", "architect")
SURNAMES = ("Silva", "Novak", "Berg", "Costa", "Keller", "Moreau", "Rossi", "Tanaka", "Okafor", "Lind")


@builtin_task(
    "d2t_person",
    cluster="struct_to_text",
    domains=("biographies",),
    definition="Write one sentence about the person that states their name, job, home city and age.",
    templates=(
        Template("name: {name}; job: {job}; city: {city}; age: {age}\nWrite a sentence about this person.",
                 "{answer}", outputs_field="answers"),
        Template("Person record -> sentence. [{name} | {job} | {city} | {age}]", "{answer}",
                 outputs_field="answers"),
        Template("Describe {name} ({age}, {job}, lives in {city}) in one sentence.", "{answer}",
                 outputs_field="answers"),
    ),
)
def _d2t_person(rng, label):
    name = f"{rng.choice(FEMALE_NAMES + MALE_NAMES)} {rng.choice(SURNAMES)}"
    job, (city, _), age = rng.choice(JOBS), rng.choice(CITIES), rng.randint(21, 80)
    answers = [f"{name} is {article(job)} {job} from {city}, aged {age}.",
               f"{name}, {age}, works as {article(job)} {job} in {city}.",
               f"{name} is a {age}-year-old {job} living in {city}."]
    return {"name": name, "job": job, "city": city, "age": age, "answer": answers[0], "answers": answers,
            "rationale": "The sentence states the name, the job, the city and the age."}
