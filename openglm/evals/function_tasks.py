"""Function-calling tasks and how a model's calls are checked — pure, shared by the ``function-calling`` eval
suite and the All Tools training data, so both ask for calls the same way.

A task is a user request written in one *wording group* (imperative, question, situational, indirect) about one
or more functions of the pool (``functions.py``), with the call(s) it should produce. Wording groups have a split
like the functions: a ``heldout`` group's templates and a ``heldout`` function's calls never appear in training
data, and a function only has templates in the groups of its own split, so the two never mix by construction.
Every template here was written for OpenGLM; none is copied from a public benchmark.

Calls are checked by structure, not by string: the arguments are parsed, the name must match, required
arguments must be present and unknown ones absent, and values are compared by type (numbers numerically, strings
case- and whitespace-insensitively, enums exactly, dates and times whatever way they are written).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .functions import BY_NAME, FUNCTIONS, UserFunction

WORDING_SPLITS = {"imperative": "train", "question": "train", "situational": "heldout", "indirect": "heldout"}


@dataclass(frozen=True)
class Call:
    """A call a request should produce: the function and the arguments the request states (as JSON values; dates
    as YYYY-MM-DD, times as HH:MM)."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class FunctionTask:
    request: str  # the user's message
    calls: list[Call] = field(default_factory=list)  # what it should produce; none for an irrelevant request


# ---------------------------------------------------------------------------------------------- the entities

CITIES = [
    "Lisbon", "Nairobi", "Osaka", "Montreal", "Tbilisi", "Auckland", "Bergen", "Cusco",
    "Da Nang", "Ljubljana", "Marrakesh", "Reykjavik", "Porto Alegre", "Hobart", "Gdansk", "Kyoto",
]  # fmt: skip
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CNY", "CHF", "CAD", "AUD", "INR", "SEK"]
SYMBOLS = ["ASML", "NVDA", "SAP", "TSM", "SHOP", "MELI", "NTES", "RIO", "ADYEN", "BYDDY"]
CHORES = [
    "water the tomato plants", "call the dentist", "renew the parking permit", "pick up the dry cleaning",
    "send the invoice to Marta", "book the car service", "back up the laptop", "buy a birthday card for Sam",
]  # fmt: skip
FIRST_NAMES = ["amara", "bruno", "chen", "dalia", "emeka", "freya", "goran", "hana"]
LAST_NAMES = ["okafor", "silva", "wu", "haddad", "lindqvist", "novak", "ito", "moreau"]
DOMAINS = ["example.org", "example.com", "example.net"]
SUBJECTS = ["Quarterly numbers", "Friday offsite", "Lease renewal", "Garden party", "Draft contract", "Team photos"]
BODIES = [
    "The figures are attached, let me know what you think.", "We meet at the north entrance at nine.",
    "Please sign and return the second page.", "Bring a dish to share if you can.",
    "I left comments in the margins.", "The photos are in the shared folder now.",
]  # fmt: skip
SENTENCES = [
    "Where is the nearest pharmacy?", "The meeting moved to Thursday.", "Thank you for the lovely dinner.",
    "Our office is closed on public holidays.", "Please keep the receipt.",
]  # fmt: skip
LANGUAGES = ["German", "Japanese", "Portuguese", "Swahili", "Korean", "Italian", "Turkish", "Dutch"]
EXPENSE_CATEGORIES = ["food", "travel", "office", "software", "other"]
RESTAURANTS = ["Casa Lumen", "The Copper Kettle", "Saffron Yard", "Little Harbour", "Noodle Lantern", "Olive Grove"]
MEETINGS = ["budget review", "design critique", "onboarding chat", "vendor call", "sprint planning", "release retro"]
THINGS = ["a lighthouse", "autumn leaves", "a sleepy cat", "the first snow", "an old bicycle", "a paper boat"]
WORDS = ["bright", "quick", "gentle", "ancient", "brave", "curious"]
ANIMALS = ["spider", "octopus", "horse", "beetle", "flamingo", "crab"]
MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip


def _date(rng: random.Random) -> tuple[str, str]:
    """A date in 2027: (YYYY-MM-DD, as a person writes it — ISO or with the month's name)."""
    day = dt.date(2027, 1, 1) + dt.timedelta(days=rng.randrange(360))
    month = MONTHS[day.month - 1]
    shown = rng.choice([day.isoformat(), f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}"])
    return day.isoformat(), shown


def _time(rng: random.Random) -> tuple[str, str]:
    """A time of day: (HH:MM, on the 24-hour or the 12-hour clock)."""
    hour, minute = rng.randrange(7, 22), rng.choice([0, 15, 30, 45])
    twelve = f"{(hour - 1) % 12 + 1}:{minute:02d} {'am' if hour < 12 else 'pm'}"
    return f"{hour:02d}:{minute:02d}", rng.choice([f"{hour:02d}:{minute:02d}", twelve])


def _amount(rng: random.Random) -> tuple[float, str]:
    """Money: (the number, as written — thousands separated, cents when there are some)."""
    value = rng.choice([rng.randrange(5, 5000), rng.randrange(500, 50000) / 100])
    shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    return value, shown


# ---------------------------------------------------------------------------------- arguments, then wordings

Sample = tuple[dict[str, Any], dict[str, str]]  # (the expected arguments, how the request shows them)


def _weather(rng: random.Random) -> Sample:
    city = rng.choice(CITIES)
    unit = rng.choice([None, None, "celsius", "fahrenheit"])  # stated only sometimes: the argument is optional
    phrase = {None: "", "celsius": ", in Celsius", "fahrenheit": ", in degrees Fahrenheit"}[unit]
    return {"city": city, **({"unit": unit} if unit else {})}, {"city": city, "unit": phrase}


def _currency(rng: random.Random) -> Sample:
    amount, shown = _amount(rng)
    source, target = rng.sample(CURRENCIES, 2)
    expected = {"amount": amount, "from_currency": source, "to_currency": target}
    return expected, {"amount": shown, "from_currency": source, "to_currency": target}


def _stock(rng: random.Random) -> Sample:
    symbol = rng.choice(SYMBOLS)
    return {"symbol": symbol}, {"symbol": symbol}


def _reminder(rng: random.Random) -> Sample:
    chore = rng.choice(CHORES)
    time, shown = _time(rng)
    return {"text": chore, "time": time}, {"text": chore, "time": shown}


def _email(rng: random.Random) -> Sample:
    address = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}@{rng.choice(DOMAINS)}"
    subject, body = rng.choice(SUBJECTS), rng.choice(BODIES)
    expected = {"to": address, "subject": subject, "body": body}
    return expected, dict(expected)


def _package(rng: random.Random) -> Sample:
    number = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2)) + str(rng.randrange(10**8, 10**9))
    return {"tracking_number": number}, {"tracking_number": number}


def _translate(rng: random.Random) -> Sample:
    text, language = rng.choice(SENTENCES), rng.choice(LANGUAGES)
    return {"text": text, "target_language": language}, {"text": text, "target_language": language}


def _expense(rng: random.Random) -> Sample:
    amount, shown = _amount(rng)
    category = rng.choice(EXPENSE_CATEGORIES)
    date, shown_date = _date(rng)
    expected = {"amount": amount, "category": category, "date": date}
    return expected, {"amount": shown, "category": category, "date": shown_date}


def _flights(rng: random.Random) -> Sample:
    origin, destination = rng.sample(CITIES, 2)
    date, shown = _date(rng)
    expected = {"origin": origin, "destination": destination, "date": date}
    return expected, {"origin": origin, "destination": destination, "date": shown}


def _table(rng: random.Random) -> Sample:
    restaurant, people = rng.choice(RESTAURANTS), rng.randrange(2, 9)
    time, shown = _time(rng)
    expected = {"restaurant": restaurant, "time": time, "people": people}
    return expected, {"restaurant": restaurant, "time": shown, "people": str(people)}


def _local_time(rng: random.Random) -> Sample:
    city = rng.choice(CITIES)
    return {"city": city}, {"city": city}


def _meeting(rng: random.Random) -> Sample:
    title, minutes = rng.choice(MEETINGS), rng.choice([15, 30, 45, 60, 90])
    date, shown = _date(rng)
    expected = {"title": title, "date": date, "duration_minutes": minutes}
    return expected, {"title": title, "date": shown, "duration": str(minutes)}


TODOS = ["renew my passport", "fix the bike light", "pay the water bill", "email the landlord", "clean the fridge"]
PLACES = ["the central station", "the airport", "Hotel Mira", "the city library", "12 Elm Street", "the harbour"]
DISHES = ["lentil soup", "fried rice", "banana bread", "tomato pasta", "green curry", "pancakes"]
SONGS = [("Morning Tide", "Lena Vos"), ("Paper Lanterns", "The Quiet Hours"), ("Blue Bicycle", "Kofi Mensah")]


def _todo(rng: random.Random) -> Sample:
    task = rng.choice(TODOS)
    if rng.random() < 0.5:
        return {"task": task}, {"task": task, "due": ""}
    date, shown = _date(rng)
    return {"task": task, "due_date": date}, {"task": task, "due": f" by {shown}"}


def _taxi(rng: random.Random) -> Sample:
    pickup, destination = rng.sample(PLACES, 2)
    passengers = rng.choice([None, 1, 2, 3, 4])
    shown = f" for {passengers}" if passengers else ""
    expected = {"pickup": pickup, "destination": destination, **({"passengers": passengers} if passengers else {})}
    return expected, {"pickup": pickup, "destination": destination, "passengers": shown}


def _air_quality(rng: random.Random) -> Sample:
    city = rng.choice(CITIES)
    return {"city": city}, {"city": city}


def _recipe(rng: random.Random) -> Sample:
    dish = rng.choice(DISHES)
    minutes = rng.choice([None, 20, 30, 45])
    shown = f" that takes at most {minutes} minutes" if minutes else ""
    return {"dish": dish, **({"max_minutes": minutes} if minutes else {})}, {"dish": dish, "limit": shown}


def _music(rng: random.Random) -> Sample:
    song, artist = rng.choice(SONGS)
    if rng.random() < 0.5:
        return {"song": song}, {"song": song, "by": ""}
    return {"song": song, "artist": artist}, {"song": song, "by": f" by {artist}"}


@dataclass(frozen=True)
class Phrasebook:
    """How requests for one function are made: its arguments drawn at random, and templates per wording group
    (``str.format`` over the shown values)."""

    sample: Callable[[random.Random], Sample]
    wordings: dict[str, tuple[str, ...]]


PHRASEBOOKS: dict[str, Phrasebook] = {
    "get_weather": Phrasebook(
        _weather,
        {
            "imperative": ("Check the current weather in {city}{unit}.", "Get me the weather for {city}{unit}."),
            "question": ("What's the weather like in {city} right now{unit}?", "How warm is it in {city} today{unit}?"),
        },
    ),
    "convert_currency": Phrasebook(
        _currency,
        {
            "imperative": (
                "Convert {amount} {from_currency} to {to_currency}.",
                "Change {amount} {from_currency} into {to_currency} for me.",
            ),
            "question": (
                "How much is {amount} {from_currency} in {to_currency}?",
                "What do {amount} {from_currency} come to in {to_currency}?",
            ),
        },
    ),
    "get_stock_price": Phrasebook(
        _stock,
        {
            "imperative": ("Look up the latest share price of {symbol}.", "Get the current stock price for {symbol}."),
            "question": ("What is {symbol} trading at right now?", "How much does one share of {symbol} cost today?"),
        },
    ),
    "set_reminder": Phrasebook(
        _reminder,
        {
            "imperative": ("Remind me to {text} at {time}.", "Set a reminder for {time}: {text}."),
            "question": ("Can you remind me at {time} to {text}?", "Could you set a reminder to {text} at {time}?"),
        },
    ),
    "send_email": Phrasebook(
        _email,
        {
            "imperative": (
                'Email {to} with the subject "{subject}" and the body "{body}"',
                'Send an email to {to}. Subject: "{subject}". Body: "{body}"',
            ),
            "question": (
                'Can you send {to} an email titled "{subject}" that says "{body}"?',
                'Would you email {to}? Subject "{subject}", message "{body}"',
            ),
        },
    ),
    "track_package": Phrasebook(
        _package,
        {
            "imperative": ("Track parcel {tracking_number}.", "Find out where my package {tracking_number} is."),
            "question": (
                "Where is my parcel with tracking number {tracking_number}?",
                "Has package {tracking_number} arrived yet?",
            ),
        },
    ),
    "translate_text": Phrasebook(
        _translate,
        {
            "imperative": (
                'Translate "{text}" into {target_language}.',
                'Send "{text}" off to be translated into {target_language}.',
            ),
            "question": (
                'Can you get "{text}" translated into {target_language}?',
                'Could you have "{text}" put into {target_language}?',
            ),
        },
    ),
    "log_expense": Phrasebook(
        _expense,
        {
            "imperative": (
                "Log an expense of {amount} under {category}, dated {date}.",
                "Record a {category} expense: {amount} on {date}.",
            ),
            "question": (
                "Can you log {amount} as a {category} expense for {date}?",
                "Could you add a {category} expense of {amount}, dated {date}?",
            ),
        },
    ),
    "search_flights": Phrasebook(
        _flights,
        {
            "situational": (
                "My sister's wedding is in {destination} and I'm leaving from {origin} on {date}. Which flights "
                "are there?",
                "There's a conference in {destination} I have to reach; I'd fly out of {origin} on {date}.",
            ),
            "indirect": (
                "I'd like to know what flights go from {origin} to {destination} on {date}.",
                "It would help to see the flights between {origin} and {destination} for {date}.",
            ),
        },
    ),
    "book_table": Phrasebook(
        _table,
        {
            "situational": (
                "It's our anniversary, so we'd love a table for {people} at {restaurant} at {time}.",
                "Some colleagues are visiting: we are {people} and want to eat at {restaurant} at {time}.",
            ),
            "indirect": (
                "I'd like a table at {restaurant} for {people} people at {time}.",
                "It would be great to have {restaurant} reserved for {people} at {time}.",
            ),
        },
    ),
    "get_local_time": Phrasebook(
        _local_time,
        {
            "situational": (
                "I need to call a supplier in {city} and don't want to wake them. What time is it there?",
                "My flight lands in {city} soon and my watch is still on home time.",
            ),
            "indirect": ("I wonder what time it is in {city} right now.", "I'd like to know the local time in {city}."),
        },
    ),
    "schedule_meeting": Phrasebook(
        _meeting,
        {
            "situational": (
                "The new hire starts soon, so we need a {duration} minute {title} on {date}.",
                "We keep missing each other; a {title} of {duration} minutes on {date} would fix that.",
            ),
            "indirect": (
                "I'd like a {duration}-minute meeting called {title} on {date}.",
                "It would help to have a {title} on the calendar for {date}, {duration} minutes long.",
            ),
        },
    ),
    "add_todo": Phrasebook(
        _todo,
        {
            "imperative": ("Add '{task}' to my to-do list{due}.", "Add a to-do: {task}{due}."),
            "question": ("Can you add {task} to my to-dos{due}?", "Could you note that I must {task}{due}?"),
        },
    ),
    "call_taxi": Phrasebook(
        _taxi,
        {
            "imperative": (
                "Get me a taxi from {pickup} to {destination}{passengers}.",
                "Order a cab{passengers} from {pickup} to {destination}.",
            ),
            "question": (
                "Can you call a taxi{passengers} to take me from {pickup} to {destination}?",
                "Could you book a cab from {pickup} to {destination}{passengers}?",
            ),
        },
    ),
    "get_air_quality": Phrasebook(
        _air_quality,
        {
            "imperative": ("Check the air quality in {city}.", "Get the AQI for {city}."),
            "question": ("How clean is the air in {city} today?", "Is the air quality in {city} good right now?"),
        },
    ),
    "find_recipe": Phrasebook(
        _recipe,
        {
            "imperative": ("Find me a recipe for {dish}{limit}.", "Look up how to make {dish}{limit}."),
            "question": ("Do you have a recipe for {dish}{limit}?", "How do I cook {dish}{limit}?"),
        },
    ),
    "play_music": Phrasebook(
        _music,
        {
            "imperative": ("Play {song}{by}.", "Put on the song {song}{by}."),
            "question": ("Can you play {song}{by} on the speaker?", "Could you start the song {song}{by}?"),
        },
    ),
}

# Two requests in one message; the second is a whole sentence, so it keeps its capital letter.
PARALLEL_JOINS = {
    "imperative": ("{first} Also, one more thing: {second}", "{first}\n{second}"),
    "question": ("{first} And another question: {second}", "{first} Oh, and: {second}"),
    "situational": ("Two unrelated things. First: {first} Second: {second}", "{first} Separately: {second}"),
    "indirect": ("{first} On another note, {second}", "A couple of things. {first} Also, {second}"),
}

# Requests no function of the pool serves: the model should just answer.
IRRELEVANT: dict[str, tuple[str, ...]] = {
    "imperative": (
        "Write a two-line poem about {thing}.",
        "List three synonyms for the word '{word}'.",
        "Spell '{word}' backwards.",
    ),
    "question": ("What is {a} plus {b}?", "How many legs does a {animal} have?", "Which number is bigger, {a} or {b}?"),
    "situational": (
        "I'm writing a card for my grandmother, who turns {a} next week; suggest a warm opening line.",
        "My kid asked me how a {animal} sleeps. What should I tell them?",
    ),
    "indirect": ("I'd like a short riddle about {thing}.", "I wonder how many minutes there are in {a} hours."),
}


def function_task(rng: random.Random, function: UserFunction, wording: str) -> FunctionTask:
    """A request in ``wording`` that ``function`` serves, with arguments drawn from ``rng``, and its call.
    KeyError when the function has no template in that group (a held-out group for a training function, say)."""
    book = PHRASEBOOKS[function.name]
    templates = book.wordings[wording]
    expected, shown = book.sample(rng)
    return FunctionTask(rng.choice(templates).format(**shown), [Call(function.name, expected)])


def parallel_task(rng: random.Random, first: UserFunction, second: UserFunction, wording: str) -> FunctionTask:
    """Two independent requests in one message: two calls, in either order."""
    one, two = function_task(rng, first, wording), function_task(rng, second, wording)
    request = rng.choice(PARALLEL_JOINS[wording]).format(first=one.request, second=two.request)
    return FunctionTask(request, [*one.calls, *two.calls])


def irrelevant_task(rng: random.Random, wording: str) -> FunctionTask:
    """A request no function of the pool serves."""
    a, b = rng.randrange(12, 99), rng.randrange(12, 99)
    values = {"thing": rng.choice(THINGS), "word": rng.choice(WORDS), "animal": rng.choice(ANIMALS), "a": a, "b": b}
    return FunctionTask(rng.choice(IRRELEVANT[wording]).format(**values))


def functions_of(split: str) -> list[UserFunction]:
    return [function for function in FUNCTIONS if function.split == split]


def wordings_of(split: str) -> list[str]:
    return [wording for wording, its_split in WORDING_SPLITS.items() if its_split == split]


# ---------------------------------------------------------------------------------------------- the checker


def check_calls(
    expected: Sequence[Call], actual: Sequence[tuple[str, str]], schemas: Mapping[str, dict[str, Any]] | None = None
) -> str | None:
    """None when ``actual`` (name, arguments as the model wrote them) are the ``expected`` calls in any order, else
    what is wrong first. ``schemas``: each function's parameters (default: the pool's)."""
    if len(actual) != len(expected):
        made = ", ".join(name for name, _ in actual) or "none"
        wanted = ", ".join(call.name for call in expected) or "none"
        return f"expected {len(expected)} call(s) ({wanted}), got {len(actual)} ({made})"
    unused = list(actual)
    for call in expected:
        candidates = [made for made in unused if made[0] == call.name]
        if not candidates:
            return f"no call of {call.name} (called {', '.join(name for name, _ in unused)})"
        schema = (schemas or {}).get(call.name) or BY_NAME[call.name].parameters
        problems = [check_arguments(call.arguments, arguments, schema) for _, arguments in candidates]
        if all(problems):
            return f"{call.name}: {problems[0]}"
        unused.remove(candidates[problems.index(None)])
    return None


def check_arguments(expected: Mapping[str, Any], written: str, schema: Mapping[str, Any]) -> str | None:
    """None when the arguments ``written`` (JSON text) carry the ``expected`` values under ``schema``."""
    try:
        arguments = json.loads(written) if written.strip() else {}
    except json.JSONDecodeError as exc:
        return f"the arguments are not JSON ({exc.msg}): {written[:80]!r}"
    if not isinstance(arguments, dict):
        return f"the arguments are not a JSON object: {written[:80]!r}"
    properties = schema.get("properties") or {}
    for name in arguments:
        if name not in properties:
            return f"unknown argument {name!r}"
    for name in [*(schema.get("required") or []), *expected]:
        if name not in arguments:
            return f"missing argument {name!r}"
    for name, value in arguments.items():
        problem = (
            compare_value(expected[name], value, properties[name])
            if name in expected
            else valid_value(value, properties[name])  # an optional argument the request left open
        )
        if problem:
            return f"argument {name!r}: {problem}"
    return None


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CLOCK_TIME = re.compile(r"^\d{2}:\d{2}$")


def compare_value(expected: Any, value: Any, schema: Mapping[str, Any]) -> str | None:
    """None when ``value`` means ``expected`` for an argument of ``schema``, else why not."""
    problem = valid_value(value, schema)
    if problem:
        return problem
    if "enum" in schema or isinstance(expected, bool):
        return None if value == expected else f"expected {expected!r} exactly, got {value!r}"
    kind = schema.get("type")
    if kind in ("number", "integer"):
        same = math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-9)
        return None if same else f"expected {expected}, got {value}"
    if kind == "array":
        if len(value) != len(expected):
            return f"expected {len(expected)} item(s), got {len(value)}"
        for i, (want, got) in enumerate(zip(expected, value, strict=True)):
            if problem := compare_value(want, got, schema.get("items") or {}):
                return f"item {i}: {problem}"
        return None
    if kind == "object":
        properties = schema.get("properties") or {}
        for key, want in expected.items():
            if key not in value:
                return f"missing key {key!r}"
            if problem := compare_value(want, value[key], properties.get(key) or {}):
                return f"key {key!r}: {problem}"
        return None
    if isinstance(expected, str) and ISO_DATE.match(expected):
        day = parse_date(value)
        return None if day == dt.date.fromisoformat(expected) else f"expected the date {expected}, got {value!r}"
    if isinstance(expected, str) and CLOCK_TIME.match(expected):
        time = parse_time(value)
        return None if time == dt.time.fromisoformat(expected) else f"expected the time {expected}, got {value!r}"
    return None if normal_text(value) == normal_text(str(expected)) else f"expected {expected!r}, got {value!r}"


def valid_value(value: Any, schema: Mapping[str, Any]) -> str | None:
    """None when ``value`` has the type (and, for an enum, one of the values) ``schema`` allows."""
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {', '.join(map(str, schema['enum']))}"
    kind = schema.get("type")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    wrong = {
        "string": not isinstance(value, str),
        "number": not number,
        "integer": not (number and float(value).is_integer()),
        "boolean": not isinstance(value, bool),
        "array": not isinstance(value, list),
        "object": not isinstance(value, dict),
    }.get(str(kind), False)
    return f"expected a{'n' if kind in ('integer', 'array', 'object') else ''} {kind}, got {value!r}" if wrong else None


def normal_text(text: str) -> str:
    """Case and spacing ignored; so are the quotes and final full stop a request wraps a quoted text in."""
    return " ".join(text.split()).casefold().strip("\"'“”‘’ ").rstrip(".!?")


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%B %d, %Y", "%B %d %Y", "%d %B %Y", "%b %d, %Y", "%b %d %Y", "%d %b %Y")
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M%p", "%I %p", "%I%p")


def parse_date(text: str) -> dt.date | None:
    """A date written in any unambiguous common form (never ``03/04/2027``, which is two dates)."""
    cleaned = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", " ".join(text.split()))
    cleaned = cleaned.split("T", 1)[0] if re.match(r"^\d{4}-\d{2}-\d{2}T", cleaned) else cleaned
    for pattern in DATE_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    return None


def parse_time(text: str) -> dt.time | None:
    """A time of day on either clock: ``19:30``, ``7:30 pm``, ``7:30 p.m.``, ``7pm``."""
    cleaned = " ".join(text.replace(".", "").split()).upper()
    for pattern in TIME_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, pattern).time()
        except ValueError:
            continue
    return None
