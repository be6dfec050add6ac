"""Training-only task families of generator versions 8 and 9: the right function among look-alikes, and v7's two
families reworded.

The v6 adapter (shipped) names a wrong function in about one function task of six, and most misses are on the
eval's own *training* functions asked in their training wordings: ``get_local_time`` for "the weather in Oslo right
now" or a stock quote, ``get_stock_price`` for the weather, ``get_weather`` for a parcel — the names that take a
city or that "right now" points to. ``fn-look-alike`` asks for one of the training functions in new wordings full
of such words ("right now", "today", "at the moment") with ``get_local_time`` always offered beside it (a held-out
function: only ever *offered*, no lesson calls it) and four of the other look-alikes drawn at random (each in about
three lessons of four), so only what the request asks for can decide. Function lessons are also written twice from
this version on (``data.REPEATS_SINCE_8``).

v7's trip lesson asked for "the day of the week", the held-out ``weekday`` family's phrase: ``date-trip-day-name``
teaches the same step worded apart from it (v7's family trains up to version 7 only). And some rule pairs of v7's
``rehearse-two-rules`` contradicted each other (small letters with a capitalised first word; a dashed list that
must start with a given word or a title): ``rehearse-two-rules-apart`` keeps those apart.

Version 9 replaces ``fn-look-alike`` with ``fn-look-alike-drawn``: the same lessons, with the decoys drawn evenly
(``get_local_time`` no longer in every one: always offered and never called, it taught the v8 adapter to avoid it)
and the answer saying the amount asked for.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..functions import BY_NAME
from .choosing import CITY_FUNCTIONS
from .composing import APART, instructed, trip_lesson
from .families import CITIES, CURRENCIES, REMINDERS, SYMBOLS
from .tasks import Answer, Call, Expect, Instance, family, fixed
from .world import World


@dataclass(frozen=True)
class LookAlike:
    """How a training function is asked for in this module's wordings, and how its result is reported."""

    asks: list[str]
    arguments: Callable[[random.Random], dict[str, Any]]
    answer: str  # formatted with the function's result
    reported: str  # the result's field the answer must mention


def _reminder(rng: random.Random) -> dict[str, Any]:
    return {"text": rng.choice(REMINDERS), "time": f"{rng.randrange(6, 23):02d}:{rng.choice(['00', '15', '30', '45'])}"}


def _money(rng: random.Random) -> dict[str, Any]:
    source, target = rng.sample(CURRENCIES, k=2)
    return {"amount": rng.randrange(5, 5_000), "from_currency": source, "to_currency": target}


LOOK_ALIKES: dict[str, LookAlike] = {
    "get_weather": LookAlike(
        [
            "How warm is it in {city} right now?",
            "Will I need an umbrella in {city} today?",
            "What is it like outside in {city} at the moment?",
            "Tell me the temperature in {city} now.",
            "Is it sunny in {city} today?",
        ],
        lambda rng: {"city": rng.choice(CITIES)},
        "It is {temperature} degrees and {sky} in {city}.",
        "temperature",
    ),
    "get_stock_price": LookAlike(
        [
            "What is {symbol} trading at right now?",
            "How much is a share of {symbol} today?",
            "Give me the current price of {symbol} stock.",
            "Check {symbol}'s share price at the moment.",
        ],
        lambda rng: {"symbol": rng.choice(SYMBOLS)},
        "{symbol} is trading at {price} {currency}.",
        "price",
    ),
    "track_package": LookAlike(
        [
            "Where is parcel {tracking_number} right now?",
            "What's the status of my delivery {tracking_number} today?",
            "Is shipment {tracking_number} on its way?",
            "Check where my order {tracking_number} is at the moment.",
        ],
        lambda rng: {"tracking_number": f"PK{rng.randrange(100_000, 999_999)}"},
        "Your parcel {tracking_number} is {status}.",
        "status",
    ),
    "convert_currency": LookAlike(
        [
            "What are {amount} {from_currency} worth in {to_currency} right now?",
            "Change {amount} {from_currency} into {to_currency} at today's rate.",
            "How many {to_currency} do I get for {amount} {from_currency} at the moment?",
        ],
        _money,
        "{amount} {from_currency} is {converted} {to}.",
        "converted",
    ),
    "set_reminder": LookAlike(
        [
            "At {time} today, remind me to {text}.",
            "I need a reminder to {text} at {time} tonight.",
            "Don't let me forget to {text}: remind me at {time}.",
        ],
        _reminder,
        "Done: I will remind you to {text} at {time}.",
        "time",
    ),
}
# What the v6 adapter named instead of the five above: get_local_time offered in every lesson, the others drawn
# with the five (``_look_alikes_offered``).
MISTAKEN_FOR = ["get_local_time", "get_weather", "get_stock_price", "track_package"]


def _look_alikes_offered(rng: random.Random, target: str) -> list[str]:
    others = [name for name in [*MISTAKEN_FOR, *LOOK_ALIKES] if name != target]
    offered = [target, *rng.sample(sorted(set(others)), k=4)]
    if "get_local_time" not in offered:
        offered[rng.randrange(1, 5)] = "get_local_time"
    rng.shuffle(offered)
    return offered


@family("fn-look-alike", "function", "train", since=8, until=8)
def _fn_look_alike(rng: random.Random, world: World) -> Instance:
    # The result's fields win over the arguments': v8's currency lines say "1424.0 GBP" (the result's float amount);
    # kept, since changing it would change v8's recorded data (version 9's family says the amount asked for).
    return _look_alike_lesson(rng, _look_alikes_offered, arguments_win=False)


# Version 9: v8's always-offered get_local_time taught the v8 adapter to avoid it (a held-out function: its eval
# tasks fell from 4 to 3 of 4, and search_flights lost to find_recipe). Here the four decoys are drawn evenly from
# the other look-alikes, the practice functions that take a city and get_local_time: one name among thirteen.
DRAWN_DECOYS = sorted({*MISTAKEN_FOR, *LOOK_ALIKES, *CITY_FUNCTIONS})


def _decoys_drawn(rng: random.Random, target: str) -> list[str]:
    offered = [target, *rng.sample([name for name in DRAWN_DECOYS if name != target], k=4)]
    rng.shuffle(offered)
    return offered


@family("fn-look-alike-drawn", "function", "train", since=9)
def _fn_look_alike_drawn(rng: random.Random, world: World) -> Instance:
    return _look_alike_lesson(rng, _decoys_drawn, arguments_win=True)


def _look_alike_lesson(
    rng: random.Random, decoys: Callable[[random.Random, str], list[str]], *, arguments_win: bool
) -> Instance:
    name = rng.choice(sorted(LOOK_ALIKES))
    lesson = LOOK_ALIKES[name]
    arguments = lesson.arguments(rng)
    result = BY_NAME[name].call(dict(arguments))
    question = rng.choice(lesson.asks).format(**arguments)
    expect = Expect(f"function:{name}", arguments=dict(arguments), result_words=[str(result[lesson.reported])])
    fields = {**result, **arguments} if arguments_win else {**arguments, **result}
    steps = fixed(Call(name, dict(arguments)), Answer(lesson.answer.format(**fields)))
    return Instance([question], expect, [steps], functions=decoys(rng, name))


@family("date-trip-day-name", "code", "train", since=8)
def _trip_day_name(rng: random.Random, world: World) -> Instance:
    """v7's ``date-trip-weekday`` with none of the held-out ``weekday`` family's words ("day of the week",
    "weekday")."""
    return trip_lesson(
        rng,
        [
            "I set off on {d} and travel for {n} days. Give the date I get back and the name of that day.",
            "My parcel ships on {d} and takes {n} days. On which date does it arrive, and is that a Monday, a "
            "Friday or another day?",
            "A course starts on {d} and lasts {n} days. When does it end? Name the date and the day.",
        ],
    )


# Rule pairs no answer can satisfy together, or that fight over the reply's first words.
CONTRADICTING = {
    frozenset(("small_letters", "first_word")),
    frozenset(("small_letters", "last_words")),
    frozenset(("small_letters", "title")),
    frozenset(("list", "first_word")),
    frozenset(("list", "title")),
}


@family("rehearse-two-rules-apart", "chat", "train", since=8)
def _two_rules_apart(rng: random.Random, world: World) -> Instance:
    return instructed(rng, 2, APART | CONTRADICTING)
