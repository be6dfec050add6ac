"""Training-only task families of generator version 4, aimed at the v3 adapter's held-out failures by kind:

- "Give me …" and "Tell me …" requests it met with a tool (a tip → the browser or the kernel): everyday asks in
  those words that need no tool — synonyms, rhymes, examples, names, fun facts (no tips, advice or thanks).
- "How many …?" questions it sent to the kernel although they asked to look something up: town facts asked as
  counts with a web cue, answered from the page with its citation (one page; no museum or company hops).
- CSV files whose rows it copied from the nearest lesson (a name/score header for any table): tables computed in
  code from the request — cubes, powers of two, a Celsius/Fahrenheit table, running totals, even numbers (no
  multiplication tables).
- Charts it drew with the image model when asked to "draw" one: bar, pie and horizontal-bar charts and
  histograms asked with "draw" and "plot", made by code (no line charts).
"""

from __future__ import annotations

import random

from .breadth import _pick
from .families import NAMES, _chat, _file_task, _series, one_page
from .tasks import Expect, Instance, family
from .world import World

# ---------------------------------------------------------------- "give me …" and "tell me …" with no tool

SYNONYMS = {"happy": "glad", "big": "large", "quick": "fast", "smart": "clever", "angry": "mad", "begin": "start"}
RHYMES = {"cat": "hat", "day": "play", "light": "night", "cake": "lake", "tree": "bee", "moon": "spoon"}
EXAMPLES = {
    "mammal": "a whale",
    "fruit": "an apple",
    "vegetable": "a carrot",
    "bird": "a sparrow",
    "planet": "Mars",
    "musical instrument": "a violin",
}
NAMES_FOR = {
    "boat": "Sea Breeze",
    "bakery": "Golden Crust",
    "band": "The Night Owls",
    "garden": "Green Corner",
    "robot": "Bolt",
}
FUN_FACTS = {
    "octopuses": "Octopuses have three hearts.",
    "honey": "Honey never spoils if it is kept sealed.",
    "the moon": "The Moon moves about 3.8 centimetres away from Earth every year.",
    "bananas": "Bananas are berries, botanically speaking.",
    "giraffes": "A giraffe's tongue can be about 50 centimetres long.",
}


@family("chat-give-me", "chat", "train")
def _chat_give_me(rng: random.Random, world: World) -> Instance:
    kind = rng.choice(["synonym", "rhyme", "example", "name"])
    if kind == "synonym":
        word = rng.choice(sorted(SYNONYMS))
        question = _pick(rng, ["Give me a synonym for '{w}'.", "Give me another word for {w}."], w=word)
        return _chat(question, f"Another word for '{word}' is '{SYNONYMS[word]}'.", [[SYNONYMS[word]]])
    if kind == "rhyme":
        word = rng.choice(sorted(RHYMES))
        question = _pick(rng, ["Give me a word that rhymes with {w}.", "Give me a rhyme for '{w}'."], w=word)
        return _chat(question, f"'{RHYMES[word].capitalize()}' rhymes with '{word}'.", [[RHYMES[word]]])
    if kind == "example":
        thing = rng.choice(sorted(EXAMPLES))
        question = _pick(rng, ["Give me an example of a {t}.", "Give me one {t}, any will do."], t=thing)
        return _chat(question, f"{EXAMPLES[thing][0].upper()}{EXAMPLES[thing][1:]} is a {thing}.", [])
    thing = rng.choice(sorted(NAMES_FOR))
    question = _pick(rng, ["Give me a name for my {t}.", "Give me a good name for a {t}."], t=thing)
    return _chat(question, f'How about "{NAMES_FOR[thing]}" for your {thing}?', [[NAMES_FOR[thing]]])


@family("chat-tell-me", "chat", "train")
def _chat_tell_me(rng: random.Random, world: World) -> Instance:
    topic = rng.choice(sorted(FUN_FACTS))
    question = _pick(
        rng,
        ["Tell me a fun fact about {t}.", "Tell me something surprising about {t}.", "Give me a fun fact about {t}."],
        t=topic,
    )
    # Any true fact answers it: judged on using no tool and answering in words of its own, not on one fact.
    return _chat(question, f"Here's one: {FUN_FACTS[topic]}", [])


# ---------------------------------------------------------------- "how many …?" with a web cue: the browser


@family("browse-town-count", "browser", "train")
def _browse_town_count(rng: random.Random, world: World) -> Instance:
    town = rng.choice(world.towns)
    question = _pick(
        rng,
        [
            "What's the population of {t}? Check online.",
            "Find out how many inhabitants {t} has.",
            "How many residents does {t} have? Please search the web.",
        ],
        t=town.name,
    )
    instance = one_page(town.name, town.path, question, "{n} has {v} inhabitants {cite}.", f"{town.population:,}")
    instance.expect.words = [[str(town.population), f"{town.population:,}"]]
    return instance


# ---------------------------------------------------------------- CSV tables computed in code


def _table_task(question: str, name: str, header: list[str], rows: list[list[object]], expression: str) -> Instance:
    """A CSV whose rows the code computes (``expression``: a Python list of rows, as code)."""
    code = (
        f"import csv\nrows = {expression}\nwith open({name!r}, 'w', newline='') as f:\n    w = csv.writer(f)\n"
        f"    w.writerow({header!r})\n    w.writerows(rows)\nprint('saved {name}', len(rows), 'rows')"
    )
    expected = [header, *([str(cell) for cell in row] for row in rows)]
    expect = Expect("code_interpreter", file_ext=".csv", csv_rows=expected)
    return _file_task(question, code, expect, f"Here is {name} with {len(rows)} rows.")


@family("csv-computed", "file", "train")
def _csv_computed(rng: random.Random, world: World) -> Instance:
    kind = rng.choice(["cubes", "powers", "celsius", "running", "even"])
    n = rng.randrange(5, 13)
    if kind == "cubes":
        question = _pick(
            rng,
            ["Make a CSV of the numbers 1 to {n} and their cubes.", "CSV file please: n and n³ for n up to {n}."],
            n=n,
        )
        rows: list[list[object]] = [[i, i**3] for i in range(1, n + 1)]
        return _table_task(question, "cubes.csv", ["n", "cube"], rows, f"[[i, i ** 3] for i in range(1, {n} + 1)]")
    if kind == "powers":
        question = _pick(
            rng,
            [
                "Create a CSV file listing 2 to the power of 0 up to {n}.",
                "Save the powers of two up to 2^{n} in a CSV.",
            ],
            n=n,
        )
        rows = [[i, 2**i] for i in range(0, n + 1)]
        return _table_task(
            question, "powers.csv", ["exponent", "value"], rows, f"[[i, 2 ** i] for i in range({n} + 1)]"
        )
    if kind == "celsius":
        top = 10 * n
        question = _pick(
            rng,
            [
                "Save a Celsius to Fahrenheit table from 0 to {m} in steps of 10 as a CSV file.",
                "I need a CSV converting 0, 10, … {m} °C to °F.",
            ],
            m=top,
        )
        rows = [[c, round(c * 9 / 5 + 32)] for c in range(0, top + 1, 10)]
        expression = f"[[c, round(c * 9 / 5 + 32)] for c in range(0, {top} + 1, 10)]"
        return _table_task(question, "temperatures.csv", ["celsius", "fahrenheit"], rows, expression)
    if kind == "running":
        question = _pick(
            rng,
            [
                "Write a CSV with 1 to {n} and the running total.",
                "CSV of the numbers up to {n} with their cumulative sum, please.",
            ],
            n=n,
        )
        rows = [[i, i * (i + 1) // 2] for i in range(1, n + 1)]
        expression = f"[[i, i * (i + 1) // 2] for i in range(1, {n} + 1)]"
        return _table_task(question, "totals.csv", ["n", "total"], rows, expression)
    question = _pick(
        rng,
        ["I need a CSV file of the first {n} even numbers.", "Put the first {n} even numbers in a CSV, numbered."],
        n=n,
    )
    rows = [[i, 2 * i] for i in range(1, n + 1)]
    return _table_task(question, "even.csv", ["position", "even"], rows, f"[[i, 2 * i] for i in range(1, {n} + 1)]")


# ---------------------------------------------------------------- charts asked with "draw" and "plot": code


@family("chart-draw", "file", "train")
def _chart_draw(rng: random.Random, world: World) -> Instance:
    data = _series(rng, NAMES)
    listing = ", ".join(f"{k} {v}" for k, v in data.items())
    kind, call, file = rng.choice(
        [
            ("bar chart", "plt.bar(list(data), list(data.values()))", "bars.png"),
            ("pie chart", "plt.pie(list(data.values()), labels=list(data))", "pie.png"),
            ("horizontal bar chart", "plt.barh(list(data), list(data.values()))", "barh.png"),
        ]
    )
    question = _pick(
        rng,
        [
            "Draw a {k} of these numbers: {d}.",
            "Plot a {k} for me: {d}.",
            "Can you draw a {k} of {d}? Save it as a picture.",
        ],
        k=kind,
        d=listing,
    )
    code = f"import matplotlib.pyplot as plt\ndata = {data!r}\n{call}\nplt.savefig({file!r})\nprint('saved {file}')"
    return _file_task(question, code, Expect("code_interpreter", file_ext=".png"), f"Here is the {kind}.")


@family("chart-histogram", "file", "train")
def _chart_histogram(rng: random.Random, world: World) -> Instance:
    values = [rng.randrange(1, 100) for _ in range(rng.randrange(8, 15))]
    listing = ", ".join(map(str, values))
    question = _pick(
        rng, ["Draw a histogram of these values: {v}.", "Plot the distribution of {v} as a histogram."], v=listing
    )
    code = (
        f"import matplotlib.pyplot as plt\nvalues = [{listing}]\nplt.hist(values, bins=5)\n"
        "plt.savefig('histogram.png')\nprint('saved histogram.png')"
    )
    return _file_task(question, code, Expect("code_interpreter", file_ext=".png"), "Here is the histogram.")
