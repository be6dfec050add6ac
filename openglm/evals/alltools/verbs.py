"""Training-only task families of generator versions 10 and 11: the function the request's *object* names, not
its verb.

The v6 adapter (shipped) and the v9 lessons continued from it still name a function whose name starts with the
request's first word: "Find me …" → ``find_recipe``, "Add an expense …" → ``add_todo``, "Check …" → ``check_train``.
A 135M model keys on the exact words it was taught, and every training request for ``find_recipe`` starts with
"find". ``fn-verb-decoy`` asks for a function with a verb that another *offered* function's name starts with
("Find out how humid it is in Oslo" beside ``find_parking`` and ``find_recipe``; "Add a reminder …" beside
``add_todo``); the ``find_``/``check_`` functions are asked both with their own verb beside a decoy sharing it
("Find a parking space …" beside ``find_recipe``) and with another (the earlier families already ask most ``get_``
functions with "get" beside other ``get_`` functions), so neither "same verb" nor "other verb" decides — only what
is asked for. Only training and practice functions are called or offered (no held-out function appears at all), and no
request asks for what a held-out function does (no flights, tables, local times or meetings). Version 11 rewords a
few of version 10's requests (``REWORDED``): one shared the held-out flight request's frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..function_tasks import DISHES, PLACES, SONGS, TODOS
from ..functions import BY_NAME, FUNCTIONS, PRACTICE_FUNCTIONS
from .choosing import LESSONS
from .contrasting import LOOK_ALIKES
from .families import future_day
from .tasks import Answer, Call, Expect, Instance, family, fixed
from .world import World


@dataclass(frozen=True)
class Asked:
    """One way to ask for a function: the wording's first word (lower case) and the wording (``str.format`` over
    the arguments)."""

    verb: str
    wording: str


@dataclass(frozen=True)
class Target:
    asks: list[Asked]
    arguments: Callable[[random.Random], dict[str, Any]]
    answer: str  # formatted with the arguments and the result
    reported: str  # the result's field the answer must mention


def _asks(*pairs: str) -> list[Asked]:
    return [Asked(wording.split()[0].lower(), wording) for wording in pairs]


def _practice(name: str, *wordings: str) -> Target:
    lesson = LESSONS[name]
    return Target(_asks(*wordings), lesson.arguments, lesson.answer, lesson.reported)


def _look_alike(name: str, *wordings: str) -> Target:
    lesson = LOOK_ALIKES[name]
    return Target(_asks(*wordings), lesson.arguments, lesson.answer, lesson.reported)


def _expense(rng: random.Random) -> dict[str, Any]:
    category = rng.choice(["food", "travel", "office", "software"])
    return {"amount": rng.randrange(5, 900), "category": category, "date": future_day(rng, within=200)}


def _taxi(rng: random.Random) -> dict[str, Any]:
    pickup, destination = rng.sample(PLACES, k=2)
    return {"pickup": pickup, "destination": destination}


TARGETS: dict[str, Target] = {
    # Asked with a verb another offered function's name starts with.
    "get_humidity": _practice(
        "get_humidity", "Find out how humid it is in {city}.", "Check how humid the air in {city} is today."
    ),
    "get_uv_index": _practice("get_uv_index", "Find the UV index for {city}.", "Check the UV index in {city}."),
    "get_traffic": _practice(
        "get_traffic", "Find out if the roads in {city} are busy.", "Check the traffic in {city}."
    ),
    "get_sunrise": _practice(
        "get_sunrise", "Find out when the sun rises in {city}.", "Check what time the sun comes up in {city}."
    ),
    "get_pollen_count": _practice(
        "get_pollen_count", "Check the pollen count in {city}.", "Find out how bad the pollen is in {city}."
    ),
    "get_calories": _practice(
        "get_calories", "Find out how many calories a {food} has.", "Check the calories in one {food}."
    ),
    "get_team_score": _practice(
        "get_team_score", "Find out whether the {team} won.", "Check the score of the last {team} game."
    ),
    "get_news": _practice("get_news", "Find me the latest {topic} news.", "Check the news about {topic}."),
    "get_battery_level": _practice(
        "get_battery_level", "Check the battery on my {device}.", "Find out how much charge my {device} has."
    ),
    "get_bus_arrival": _practice(
        "get_bus_arrival", "Find out when the next bus comes to {stop}.", "Check when a bus stops at {stop}."
    ),
    "list_events": _practice(
        "list_events", "Find me something to do in {city} tonight.", "Check what's on in {city} this evening."
    ),
    "set_thermostat": _practice(
        "set_thermostat",
        "Get the {room} to {temperature} degrees.",
        "Check that the {room} is set to {temperature} degrees.",
    ),
    "rent_bike": _practice("rent_bike", "Get me a bike at {station}.", "Find me a bike to rent at {station}."),
    "order_pizza": _practice(
        "order_pizza", "Get me a {size} {topping} pizza.", "Find me a {size} pizza with {topping}."
    ),
    "get_weather": _look_alike(
        "get_weather", "Find out what the weather is in {city}.", "Check if it is raining in {city}."
    ),
    "get_stock_price": _look_alike(
        "get_stock_price", "Find the share price of {symbol}.", "Check what one {symbol} share costs."
    ),
    "track_package": _look_alike(
        "track_package", "Find my parcel {tracking_number}.", "Check on parcel {tracking_number}."
    ),
    "convert_currency": _look_alike(
        "convert_currency",
        "Find out what {amount} {from_currency} is in {to_currency}.",
        "Check how many {to_currency} I get for {amount} {from_currency}.",
    ),
    "set_reminder": _look_alike(
        "set_reminder", "Add a reminder to {text} at {time}.", "Get me a reminder at {time} to {text}."
    ),
    "log_expense": Target(
        _asks(
            "Add an expense of {amount} dollars for {category} on {date}.",
            "Add {amount} dollars of {category} spending to my expenses, dated {date}.",
            "Check in a {category} expense: {amount} dollars on {date}.",
        ),
        _expense,
        "Logged {amount} dollars for {category} (entry {id}).",
        "id",
    ),
    "call_taxi": Target(
        _asks(
            "Get me a taxi from {pickup} to {destination}.", "Find me a cab to {destination}; pick me up at {pickup}."
        ),
        _taxi,
        "A taxi is on its way to {pickup}: {car}, arriving in {arrives_in_minutes} minutes.",
        "arrives_in_minutes",
    ),
    "play_music": Target(
        _asks("Find {song} and play it.", "Get {song} playing on the speaker."),
        lambda rng: {"song": rng.choice(SONGS)[0]},
        "Now playing {song}.",
        "status",
    ),
    "add_todo": Target(
        _asks("Get {task} onto my to-do list.", "Set {task} as a task on my to-do list."),
        lambda rng: {"task": rng.choice(TODOS)},
        "Added to your to-do list: {task}.",
        "task",
    ),
    # Asked with the verb their own name starts with, beside a decoy sharing it.
    "find_recipe": Target(
        _asks("Find a recipe for {dish}.", "Get me a recipe for {dish}.", "Check how to cook {dish}."),
        lambda rng: {"dish": rng.choice(DISHES)},
        "Try {recipe}: it takes {minutes} minutes and serves {servings}.",
        "minutes",
    ),
    "find_parking": _practice(
        "find_parking", "Find a parking space in {city} centre.", "Check for free parking spaces in {city}."
    ),
    "check_train": _practice(
        "check_train", "Check train {train_number} for delays.", "Find out if train {train_number} runs late."
    ),
    "check_balance": _practice(
        "check_balance", "Check my {account} balance.", "Find out what my {account} account holds."
    ),
}

# The functions lessons may offer: every training and practice function (v4's), none held out.
POOL = sorted(f.name for f in [*FUNCTIONS, *PRACTICE_FUNCTIONS] if f.split != "heldout")


def _named_with(verb: str, target: str) -> list[str]:
    return [name for name in POOL if name != target and name.split("_")[0] == verb]


def _offered(rng: random.Random, target: str, verb: str) -> list[str]:
    """The target, up to two functions whose name starts with the request's verb, then others drawn from the pool."""
    alike = _named_with(verb, target)
    decoys = rng.sample(alike, k=min(2, len(alike)))
    decoys += rng.sample([name for name in POOL if name != target and name not in decoys], k=4 - len(decoys))
    offered = [target, *decoys]
    rng.shuffle(offered)
    return offered


@family("fn-verb-decoy", "function", "train", since=10, until=10)
def _fn_verb_decoy(rng: random.Random, world: World) -> Instance:
    return _verb_lesson(rng, TARGETS)


# Version 11: v10's taxi wording ("Find me a cab to …; pick me up at …") had the frame of the held-out flight
# request ("Find me a flight from … to …"), and a few wordings were unidiomatic or asked the wrong thing ("Check that
# the kitchen is set to 20 degrees" is a question, not an order; "a avocado").
REWORDED = {
    "set_thermostat": [
        "Get the {room} to {temperature} degrees.",
        "Set the heating in the {room} to {temperature} degrees.",
    ],
    "call_taxi": [
        "Get me a taxi from {pickup} to {destination}.",
        "Set up a taxi from {pickup} to {destination} for me.",
    ],
    "get_calories": ["Find out how many calories one {food} has.", "Check the calories in one {food}."],
    "log_expense": [
        "Add an expense of {amount} dollars for {category} on {date}.",
        "Add {amount} dollars of {category} spending to my expenses, dated {date}.",
        "Get this {category} expense on the books: {amount} dollars on {date}.",
    ],
    "check_balance": ["Check how much my {account} account holds.", "Find out what my {account} account holds."],
}
TARGETS_SINCE_11 = {
    name: replace(target, asks=_asks(*REWORDED[name])) if name in REWORDED else target
    for name, target in TARGETS.items()
}


@family("fn-verb-decoy-reworded", "function", "train", since=11)
def _fn_verb_decoy_reworded(rng: random.Random, world: World) -> Instance:
    return _verb_lesson(rng, TARGETS_SINCE_11)


def _verb_lesson(rng: random.Random, targets: dict[str, Target]) -> Instance:
    name = rng.choice(sorted(targets))
    target = targets[name]
    asked = rng.choice(target.asks)
    arguments = target.arguments(rng)
    result = BY_NAME[name].call(dict(arguments))
    question = asked.wording.format(**arguments)
    reported = result[target.reported]
    reported = reported[0]["price"] if isinstance(reported, list) else reported
    expect = Expect(f"function:{name}", arguments=dict(arguments), result_words=[str(reported)])
    steps = fixed(Call(name, dict(arguments)), Answer(target.answer.format(**{**result, **arguments})))
    return Instance([question], expect, [steps], functions=_offered(rng, name, asked.verb))
