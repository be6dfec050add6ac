"""Training-only task families of generator version 4: choosing the function by what it does.

The v3 adapter chose the right function of five in 67.5 % of tasks; most wrong choices were get_weather, the
function it saw called most often, for any request that named a city. With a dozen training functions a 135M
model learns "a city → get_weather". These families call the invented practice functions
(``functions.PRACTICE_FUNCTIONS``), offered beside functions that take the same argument, so only the request's
words against each function's name and description can decide. Only these (train) families offer practice
functions — every other family's tasks, held-out ones included, are what they were — and none does what a
held-out function does (no flights, table bookings, local times or meetings).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..functions import BY_NAME, FUNCTIONS, PRACTICE_FUNCTIONS
from .families import CITIES
from .tasks import Answer, Call, Expect, Instance, family, fixed
from .world import World

Arguments = Callable[[random.Random], dict[str, Any]]


@dataclass(frozen=True)
class Lesson:
    """How users ask for one practice function, and how the answer reports its result."""

    asks: list[str]  # formatted with the arguments
    answer: str  # formatted with the arguments and the result
    arguments: Arguments
    reported: str  # the result's field the answer must mention (of a list: its first item's price)


def _city(rng: random.Random) -> dict[str, Any]:
    return {"city": rng.choice(CITIES)}


def _one(key: str, values: list[Any]) -> Arguments:
    return lambda rng: {key: rng.choice(values)}


ROOMS = ["kitchen", "bedroom", "living room", "bathroom", "office", "garage"]
FOODS = ["banana", "bagel", "avocado", "cheeseburger", "bowl of rice", "apple pie", "omelette"]
TEAMS = ["Lima Lions", "Oslo Owls", "Denver Dragons", "Porto Pirates", "Osaka Otters"]
TOPICS = ["science", "football", "space", "climate", "music", "technology"]
DEVICES = ["phone", "laptop", "tablet", "headphones", "watch"]
STOPS = ["Main Street", "Station Square", "Park Lane", "Museum Gate", "River Road"]

LESSONS: dict[str, Lesson] = {
    "get_humidity": Lesson(
        ["How humid is it in {city} right now?", "What's the humidity in {city}?", "Check the humidity for {city}."],
        "The humidity in {city} is {humidity_percent} percent.",
        _city,
        "humidity_percent",
    ),
    "get_uv_index": Lesson(
        ["What's the UV index in {city} today?", "Do I need sunscreen in {city}? Check the UV index."],
        "The UV index in {city} is {uv_index} today.",
        _city,
        "uv_index",
    ),
    "get_pollen_count": Lesson(
        ["Is the pollen bad in {city} today?", "Get the pollen count for {city}."],
        "The pollen count in {city} is {pollen} today.",
        _city,
        "pollen",
    ),
    "get_traffic": Lesson(
        ["How bad is the traffic in {city}?", "Are the roads in {city} jammed right now?"],
        "Traffic in {city} is causing about {delay_minutes} minutes of delay.",
        _city,
        "delay_minutes",
    ),
    "get_sunrise": Lesson(
        ["When does the sun rise in {city} today?", "What time is sunset in {city}?"],
        "In {city} the sun rises at {sunrise} and sets at {sunset}.",
        _city,
        "sunrise",
    ),
    "find_parking": Lesson(
        ["Can I find a parking space in {city} centre?", "How many free parking spots are there in {city}?"],
        "There are {free_spaces} free parking spaces in {city} centre.",
        _city,
        "free_spaces",
    ),
    "get_fuel_price": Lesson(
        ["How much is {fuel} in {city} today?", "What does a litre of {fuel} cost in {city}?"],
        "A litre of {fuel} costs {price_per_litre} in {city} today.",
        lambda rng: {"city": rng.choice(CITIES), "fuel": rng.choice(["petrol", "diesel"])},
        "price_per_litre",
    ),
    "check_train": Lesson(
        ["Is train {train_number} on time?", "Check whether train {train_number} is delayed."],
        "Train {train_number} is running {delay_minutes} minutes late.",
        lambda rng: {"train_number": f"{rng.choice(['IC', 'RE', 'TGV'])}{rng.randrange(100, 999)}"},
        "delay_minutes",
    ),
    "get_bus_arrival": Lesson(
        ["When is the next bus at {stop}?", "How long until a bus comes to the {stop} stop?"],
        "The next bus at {stop} comes in {minutes} minutes.",
        _one("stop", STOPS),
        "minutes",
    ),
    "get_calories": Lesson(
        ["How many calories are in a {food}?", "Look up the calories of one {food}."],
        "One {food} has {calories} calories.",
        _one("food", FOODS),
        "calories",
    ),
    "get_team_score": Lesson(
        ["Did the {team} win their last game?", "What was the score of the {team} game?"],
        "The {team} played their last game with a score of {score}.",
        _one("team", TEAMS),
        "score",
    ),
    "get_news": Lesson(
        ["What's the latest {topic} news?", "Give me today's top headline about {topic}."],
        "The latest on {topic}: {headline}.",
        _one("topic", TOPICS),
        "headline",
    ),
    "check_balance": Lesson(
        ["How much money is in my {account} account?", "Check my {account} balance."],
        "Your {account} account holds {balance}.",
        _one("account", ["checking", "savings"]),
        "balance",
    ),
    "get_battery_level": Lesson(
        ["How much battery does my {device} have left?", "Is my {device} charged?"],
        "Your {device} is at {battery_percent} percent.",
        _one("device", DEVICES),
        "battery_percent",
    ),
    "list_events": Lesson(
        ["What's on in {city} tonight?", "Are there any concerts or shows in {city} today?"],
        "{events[0][name]} starts at {events[0][time]} ({events[0][price]} dollars), and {events[1][name]} at "
        "{events[1][time]}.",
        _city,
        "events",
    ),
    "turn_on_lights": Lesson(
        ["Turn on the lights in the {room}.", "It's dark in the {room}, switch the light on please."],
        "The lights in the {room} are {status}.",
        _one("room", ROOMS),
        "status",
    ),
    "set_thermostat": Lesson(
        ["Set the {room} to {temperature} degrees.", "Heat the {room} to {temperature} degrees, please."],
        "The {room} is set to {temperature} degrees.",
        lambda rng: {"room": rng.choice(ROOMS), "temperature": rng.randrange(16, 25)},
        "temperature",
    ),
    "lock_door": Lesson(
        ["Lock the {door}.", "Did I forget to lock the {door}? Lock it please."],
        "The {door} is {status}.",
        _one("door", ["front door", "back door", "garage door"]),
        "status",
    ),
    "water_garden": Lesson(
        ["Water the {zone} for {minutes} minutes.", "Run the sprinklers in the {zone}, {minutes} minutes."],
        "The {zone} is being watered for {minutes} minutes.",
        lambda rng: {"zone": rng.choice(["lawn", "vegetable bed", "roses"]), "minutes": rng.randrange(5, 40)},
        "minutes",
    ),
    "order_pizza": Lesson(
        ["Order a {size} {topping} pizza.", "I'm hungry, get me a {size} pizza with {topping}."],
        "Your {size} {topping} pizza is ordered and arrives in {arrives_in_minutes} minutes.",
        lambda rng: {
            "size": rng.choice(["small", "medium", "large"]),
            "topping": rng.choice(["mushroom", "pepperoni", "olive", "ham"]),
        },
        "arrives_in_minutes",
    ),
    "send_sms": Lesson(
        ["Text {phone}: {message}", "Send an SMS to {phone} saying {message}"],
        "Your message to {phone} was sent.",
        lambda rng: {
            "phone": f"+{rng.randrange(10, 99)} {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
            "message": rng.choice(["running late", "see you at eight", "call me back", "happy birthday"]),
        },
        "status",
    ),
    "pay_bill": Lesson(
        ["Pay my {company} bill of {amount} dollars.", "Please pay {amount} dollars to {company}."],
        "Paid {amount} dollars to {company}, receipt {receipt}.",
        lambda rng: {"company": rng.choice(["City Power", "AquaWorks", "NetLink"]), "amount": rng.randrange(20, 300)},
        "receipt",
    ),
    "rent_bike": Lesson(
        ["Rent me a bike at {station}.", "Unlock a bike for me at the {station} station."],
        "Bike {bike} is unlocked at {station}.",
        _one("station", STOPS),
        "bike",
    ),
}


def _decoys(rng: random.Random, target: str) -> list[str]:
    """Four other functions: as many as can be of those taking the same first argument (a city among cities),
    then any, from the practice and eval pools."""
    pool = [f for f in [*PRACTICE_FUNCTIONS, *FUNCTIONS] if f.name != target]
    first = next(iter(BY_NAME[target].parameters["properties"]))
    alike = [f.name for f in pool if first in f.parameters["properties"]]
    chosen = rng.sample(alike, k=min(2 + rng.randrange(0, 3), len(alike)))
    others = [f.name for f in pool if f.name not in chosen]
    offered = [target, *chosen, *rng.sample(others, k=4 - len(chosen))]
    rng.shuffle(offered)
    return offered


def practice_task(
    rng: random.Random,
    names: list[str],
    lessons: dict[str, Lesson] | None = None,
    decoys: Callable[[random.Random, str], list[str]] | None = None,
) -> Instance:
    name = rng.choice(names)
    lesson = (lessons or LESSONS)[name]
    arguments = lesson.arguments(rng)
    result = BY_NAME[name].call(dict(arguments))
    question = rng.choice(lesson.asks).format(**arguments)
    reported = result[lesson.reported]
    reported = reported[0]["price"] if isinstance(reported, list) else reported
    expect = Expect(f"function:{name}", arguments=dict(arguments), result_words=[str(reported)])
    steps = fixed(Call(name, dict(arguments)), Answer(lesson.answer.format(**{**arguments, **result})))
    return Instance([question], expect, [steps], functions=(decoys or _decoys)(rng, name))


CITY_FUNCTIONS = [f.name for f in PRACTICE_FUNCTIONS if "city" in f.parameters["properties"]]
HOME_FUNCTIONS = ["turn_on_lights", "set_thermostat", "lock_door", "water_garden", "order_pizza", "send_sms"]
OTHER_FUNCTIONS = [name for name in LESSONS if name not in CITY_FUNCTIONS and name not in HOME_FUNCTIONS]


@family("fn-practice-city", "function", "train")
def _practice_city(rng: random.Random, world: World) -> Instance:
    return practice_task(rng, CITY_FUNCTIONS)


@family("fn-practice-home", "function", "train")
def _practice_home(rng: random.Random, world: World) -> Instance:
    return practice_task(rng, HOME_FUNCTIONS)


@family("fn-practice-more", "function", "train")
def _practice_more(rng: random.Random, world: World) -> Instance:
    return practice_task(rng, OTHER_FUNCTIONS)
