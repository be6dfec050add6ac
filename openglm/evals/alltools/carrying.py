"""Training-only task families of generator version 6: carrying the user's own words and data into the call.

The v5 adapter's held-out failures, read from the eval's transcripts (which now keep each call's input and
output), were mostly copying failures rather than wrong tools: a drawing prompt that dropped the style the user
asked for and wrote the lessons' fixed "detailed illustration, soft light" instead; a dict of the user's data
that turned into an endless run of invented months; a date argument rewritten as "4 April 2027"; and "how many
people live in …" about an invented town answered with code, where every browsing lesson had a word of searching.
These families teach the general skill on other sub-tasks: describing words kept in the drawing prompt (looks and
settings, never an art style or an added object), labelled data copied into a dict and reduced, facts about the
website's towns and products asked with no word of searching, and a practice function whose argument is a date the
user wrote (``get_rain_forecast``). None is a held-out family reworded: no art styles or "add X", no line charts
or months, no weekdays, word counts, percentages or spreads, no company or museum pages. All are ``train`` and
``since=6``: data of version 5 (the shipped adapter's, until one is trained on these) is still made without them.
"""

from __future__ import annotations

import random

from .breadth import PEOPLE, _pick
from .choosing import Lesson, practice_task
from .families import CITIES, DETAIL, SUBJECTS, _code_task, _draw_steps, future_day, one_page
from .tasks import Expect, Instance, family
from .world import World

# ---------------------------------------------------------------- drawing: the user's describing words kept

LOOKS = [
    ("colourful", "colourful"),
    ("tiny", "tiny"),
    ("giant", "giant"),
    ("cheerful", "cheerful"),
    ("spooky", "spooky"),
    ("cute", "cute"),
    ("golden", "golden"),
    ("misty", "misty"),
    ("gloomy", "gloomy"),
]
SETTINGS = [
    ("with a blue sky behind it", "sky"),
    ("on a plain white background", "white"),
    ("seen from far away", "far"),
    ("as a close-up", "close"),
    ("in bright colours", "bright"),
    ("under a starry sky", "starry"),
    ("surrounded by flowers", "flowers"),
    ("in the fog", "fog"),
]


@family("draw-described", "drawing", "train", since=6)
def _draw_described(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    if rng.random() < 0.5:
        look, look_key = rng.choice(LOOKS)
        question = _pick(rng, ["I want a {a} picture of {s}.", "Draw {s}. Make it {a}."], a=look, s=subject)
        prompt = f"{look[0].upper()}{look[1:]} {subject.split(' ', 1)[1]}, {DETAIL}"
    else:
        setting, look_key = rng.choice(SETTINGS)
        question = _pick(rng, ["Draw {s} {w}.", "Please make an image of {s}, {w}."], s=subject, w=setting)
        prompt = f"{subject[0].upper()}{subject[1:]} {setting}, {DETAIL}"
    return Instance(
        [question],
        Expect("drawing_tool", prompt_words=[[key], [look_key]]),
        [_draw_steps(prompt, f"Here is {subject}, as you described it.")],
    )


# ---------------------------------------------------------------- code: labelled data copied into a dict

SCORED = {  # kind → (wording, most or fewest, plausible values)
    "points": ("Here are the points each player scored: {d}. Who scored the most?", "most", (3, 99)),
    "votes": ("Votes per city: {d}. Which city got the fewest votes?", "fewest", (100, 9_999)),
    "steps": ("Steps walked this week by each of us: {d}. Who walked the most?", "most", (5_000, 90_000)),
    "books": ("Books read this year: {d}. Who read the fewest?", "fewest", (1, 60)),
}


@family("stats-labelled", "code", "train", since=6)
def _labelled(rng: random.Random, world: World) -> Instance:
    kind = rng.choice(sorted(SCORED))
    wording, which, (low, high) = SCORED[kind]
    labels = CITIES if kind == "votes" else PEOPLE
    data = {label: rng.randrange(low, high) for label in rng.sample(labels, k=rng.randrange(5, 10))}
    while len(set(data.values())) < len(data):  # one answer
        data = {label: rng.randrange(low, high) for label in data}
    listing = ", ".join(f"{k} {v}" for k, v in data.items())
    pick = max if which == "most" else min
    code = f"{kind} = {data!r}\nprint({pick.__name__}({kind}, key={kind}.get))"
    chosen = pick(data, key=data.__getitem__)
    instance = _code_task(wording.format(d=listing), code, 0, f"{{out}} has the {which} {kind}.")
    instance.expect = Expect("code_interpreter", words=[[chosen]])
    return instance


# ---------------------------------------------------------------- the browser: facts asked with no word of searching


@family("browse-plain", "browser", "train", since=6)
def _browse_plain(rng: random.Random, world: World) -> Instance:
    if rng.random() < 0.5:
        town = rng.choice(world.towns)
        question, answer, value = rng.choice(
            [
                ("How many inhabitants does {n} have?", "{n} has {v} inhabitants {cite}.", town.population),
                ("When was {n} founded?", "{n} was founded in {v} {cite}.", town.founded),
                ("Who is the mayor of {n} these days?", "The mayor of {n} is {v} {cite}.", town.mayor),
            ]
        )
        return one_page(town.name, town.path, question, answer, value)
    product = rng.choice(world.products)
    question, answer, value = rng.choice(
        [
            ("What does the {n} cost?", "The {n} costs {v} dollars {cite}.", product.price),
            ("What year did the {n} come out?", "The {n} came out in {v} {cite}.", product.released),
        ]
    )
    return one_page(product.name, product.path, question, answer, value)


# ---------------------------------------------------------------- a function whose argument is a date, as written


DATED = {
    "get_rain_forecast": Lesson(
        ["Will it rain in {city} on {date}?", "What's the chance of rain in {city} on {date}?"],
        "The chance of rain in {city} on {date} is {rain_chance_percent} percent.",
        lambda rng: {"city": rng.choice(CITIES), "date": future_day(rng)},
        "rain_chance_percent",
    )
}


@family("fn-practice-dated", "function", "train", since=6)
def _practice_dated(rng: random.Random, world: World) -> Instance:
    return practice_task(rng, sorted(DATED), DATED)
