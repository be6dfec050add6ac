"""The All Tools task families: everyday requests of the kinds GLM-4's All Tools launch showed, invented for
OpenGLM. Each family is ``train`` (its instances may be training data) or ``heldout`` (never in any training
file); held-out families differ in wording *and* in sub-task (a percentage where training saw products, a weekday
where it saw date differences, a museum where it saw products), so their score measures generalisation."""

from __future__ import annotations

import random
import re
import statistics
from datetime import date, timedelta

from ..functions import BY_NAME, FUNCTIONS
from .tasks import Answer, Call, Expect, Instance, Step, family, fixed
from .world import World

# ---------------------------------------------------------------- code: arithmetic, statistics, dates, counting


def _code(code: str) -> Call:
    return Call("python", {"code": code})


def _printed(observations: list[str]) -> str:
    """The first line the code printed (the teacher quotes the tool, never its own arithmetic)."""
    return observations[-1].strip().splitlines()[0].strip() if observations and observations[-1].strip() else ""


def _code_task(question: str, code: str, expected: float, answer: str) -> Instance:
    """``answer`` has ``{out}`` where the printed value goes."""
    steps: list[Step] = [lambda _obs: _code(code), lambda obs: Answer(answer.format(out=_printed(obs)))]
    return Instance([question], Expect("code_interpreter", numbers=[expected]), [steps])


@family("arith-product", "code", "train")
def _product(rng: random.Random, world: World) -> Instance:
    a, b = rng.randrange(1_000, 999_999), rng.randrange(100, 99_999)
    wording = rng.choice(
        [
            "What is {a} × {b}?",
            "Calculate {a} times {b}.",
            "Multiply {a} by {b}, exactly please.",
            "How much is {a}*{b}?",
            "I need the exact product of {a} and {b}.",
        ]
    )
    return _code_task(wording.format(a=a, b=b), f"print({a} * {b})", a * b, f"{a} × {b} = {{out}}.")


@family("arith-expression", "code", "train")
def _expression(rng: random.Random, world: World) -> Instance:
    a, b, c, d = (rng.randrange(10, 9_999) for _ in range(4))
    wording = rng.choice(
        [
            "Compute ({a} + {b}) × {c} − {d}.",
            "What is ({a}+{b})*{c}-{d}?",
            "Work out ({a} plus {b}) times {c}, minus {d}.",
        ]
    )
    expr = f"({a} + {b}) * {c} - {d}"
    return _code_task(wording.format(a=a, b=b, c=c, d=d), f"print({expr})", (a + b) * c - d, "The result is {out}.")


@family("arith-power", "code", "train")
def _power(rng: random.Random, world: World) -> Instance:
    a, n = rng.randrange(2, 99), rng.randrange(5, 15)
    wording = rng.choice(["What is {a} to the power of {n}?", "Calculate {a}^{n}.", "How big is {a} raised to {n}?"])
    return _code_task(wording.format(a=a, n=n), f"print({a} ** {n})", a**n, f"{a}^{n} = {{out}}.")


@family("percent", "code", "heldout")
def _percent(rng: random.Random, world: World) -> Instance:
    p, n = rng.randrange(3, 95), rng.randrange(120, 99_999)
    wording = rng.choice(
        [
            "What is {p}% of {n}?",
            "A {n} yuan sofa is {p}% off. How much is the discount?",
            "Work out {p} percent of {n}.",
        ]
    )
    return _code_task(wording.format(p=p, n=n), f"print({n} * {p} / 100)", n * p / 100, "It is {out}.")


def _numbers(rng: random.Random) -> list[int]:
    return [rng.randrange(1, 500) for _ in range(rng.randrange(6, 12))]


@family("stats-mean", "code", "train")
def _mean(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    wording = rng.choice(
        [
            "What is the average of {v}?",
            "Find the mean of these numbers: {v}.",
            "My test scores were {v}. What is my average score?",
        ]
    )
    code = f"import statistics\nprint(round(statistics.mean([{listing}]), 2))"
    expected = round(statistics.mean(values), 2)
    return _code_task(wording.format(v=listing), code, expected, "The average is {out}.")


@family("stats-median", "code", "train")
def _median(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    wording = rng.choice(
        [
            "What is the median of {v}?",
            "Find the median value of: {v}.",
            "These are house prices in thousands: {v}. What is the median?",
        ]
    )
    code = f"import statistics\nprint(statistics.median([{listing}]))"
    return _code_task(wording.format(v=listing), code, statistics.median(values), "The median is {out}.")


@family("stats-stdev", "code", "heldout")
def _stdev(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    wording = rng.choice(
        [
            "What is the standard deviation of {v}? Round to 2 decimals.",
            "How spread out are these numbers: {v}? Give the sample standard deviation to 2 decimals.",
        ]
    )
    code = f"import statistics\nprint(round(statistics.stdev([{listing}]), 2))"
    return _code_task(
        wording.format(v=listing), code, round(statistics.stdev(values), 2), "The standard deviation is {out}."
    )


def _day(rng: random.Random) -> date:
    return date(1990, 1, 1) + timedelta(days=rng.randrange(0, 16_000))


def future_day(rng: random.Random, within: int = 365) -> str:
    """A day of 2027, as users write it and functions take it (ISO)."""
    return (date(2027, 1, 1) + timedelta(days=rng.randrange(0, within))).isoformat()


@family("date-diff", "code", "train")
def _date_diff(rng: random.Random, world: World) -> Instance:
    first, second = sorted([_day(rng), _day(rng)])
    wording = rng.choice(
        [
            "How many days are there between {a} and {b}?",
            "Count the days from {a} to {b}.",
            "I started on {a} and finished on {b}. How many days was that?",
        ]
    )
    code = f"from datetime import date\nprint((date{second.timetuple()[:3]} - date{first.timetuple()[:3]}).days)"
    return _code_task(
        wording.format(a=first.isoformat(), b=second.isoformat()), code, (second - first).days, "That is {out} days."
    )


@family("date-add", "code", "train")
def _date_add(rng: random.Random, world: World) -> Instance:
    start, days = _day(rng), rng.randrange(10, 2_000)
    end = start + timedelta(days=days)
    wording = rng.choice(["What date is {n} days after {d}?", "If I start on {d}, what is the date {n} days later?"])
    code = f"from datetime import date, timedelta\nprint(date{start.timetuple()[:3]} + timedelta(days={days}))"
    instance = _code_task(wording.format(n=days, d=start.isoformat()), code, 0, "It is {out}.")
    instance.expect = Expect("code_interpreter", words=[[end.isoformat()]])
    return instance


@family("weekday", "code", "heldout")
def _weekday(rng: random.Random, world: World) -> Instance:
    day = _day(rng)
    wording = rng.choice(["What day of the week was {d}?", "Which weekday did {d} fall on?"])
    code = f"from datetime import date\nprint(date{day.timetuple()[:3]}.strftime('%A'))"
    instance = _code_task(wording.format(d=day.isoformat()), code, 0, f"{day.isoformat()} was a {{out}}.")
    instance.expect = Expect("code_interpreter", words=[[day.strftime("%A")]])
    return instance


WORDS = [
    "strawberry",
    "mississippi",
    "bookkeeper",
    "committee",
    "assessment",
    "banana",
    "parallel",
    "occurrence",
    "engineering",
    "successfully",
    "tomorrow",
    "programming",
    "necessary",
    "millennium",
    "balloon",
]


@family("count-letters", "code", "train")
def _count_letters(rng: random.Random, world: World) -> Instance:
    word = rng.choice(WORDS)
    letter = rng.choice(sorted(set(word)))
    wording = rng.choice(
        [
            "How many times does the letter '{c}' appear in '{w}'?",
            "Count the {c}'s in the word {w}.",
            "How many '{c}' are in \"{w}\"?",
        ]
    )
    return _code_task(
        wording.format(c=letter, w=word),
        f"print({word!r}.count({letter!r}))",
        word.count(letter),
        f"'{letter}' appears {{out}} times in '{word}'.",
    )


SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "we met at the station before the storm came in",
    "small models can learn to use tools with enough good examples",
    "my sister plays the violin every evening",
    "three green parrots sat on the old fence and sang",
    "please bring two loaves of bread and some cheese",
]


@family("count-words", "code", "heldout")
def _count_words(rng: random.Random, world: World) -> Instance:
    words = rng.choice(SENTENCES).split()
    start = rng.randrange(0, len(words) - 3)
    sentence = " ".join(words[start : start + rng.randrange(4, 8)])
    wording = rng.choice(['How many words are in this sentence: "{s}"?', "Count the words in: {s}"])
    return _code_task(
        wording.format(s=sentence), f"print(len({sentence!r}.split()))", len(sentence.split()), "It has {out} words."
    )


# ---------------------------------------------------------------- files the user asked for

NAMES = ["apples", "pears", "plums", "cherries", "kiwis", "mangoes", "figs", "lemons"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"]


def _file_task(question: str, code: str, expect: Expect, answer: str) -> Instance:
    return Instance([question], expect, [fixed(_code(code), Answer(answer))])


@family("csv-squares", "file", "train")
def _csv_squares(rng: random.Random, world: World) -> Instance:
    n = rng.randrange(5, 15)
    name = rng.choice(["squares.csv", "table.csv", "numbers.csv"])
    wording = rng.choice(
        [
            "Make a CSV file with the numbers 1 to {n} and their squares.",
            "Create a CSV of n and n squared for n from 1 to {n}, called {f}.",
            "I need a spreadsheet file (CSV) listing 1..{n} with their squares.",
        ]
    )
    code = (
        f"import csv\nwith open({name!r}, 'w', newline='') as f:\n    w = csv.writer(f)\n"
        f"    w.writerow(['n', 'square'])\n    w.writerows([i, i * i] for i in range(1, {n} + 1))\n"
        f"print('saved {name}')"
    )
    rows = [["n", "square"], *([str(i), str(i * i)] for i in range(1, n + 1))]
    return _file_task(
        wording.format(n=n, f=name),
        code,
        Expect("code_interpreter", file_ext=".csv", csv_rows=rows),
        f"Here is {name} with the numbers 1 to {n} and their squares.",
    )


@family("csv-times-table", "file", "heldout")
def _csv_times(rng: random.Random, world: World) -> Instance:
    k = rng.randrange(2, 20)
    wording = rng.choice(
        [
            "Save the multiplication table of {k} (1 to 10) as a CSV file.",
            "Give me a CSV file with {k} × 1 up to {k} × 10.",
        ]
    )
    code = (
        f"import csv\nwith open('table_{k}.csv', 'w', newline='') as f:\n    w = csv.writer(f)\n"
        f"    w.writerow(['n', 'product'])\n    w.writerows([i, {k} * i] for i in range(1, 11))\n"
    )
    rows = [["n", "product"], *([str(i), str(k * i)] for i in range(1, 11))]
    return _file_task(
        wording.format(k=k),
        code,
        Expect("code_interpreter", file_ext=".csv", csv_rows=rows),
        f"Here is the multiplication table of {k}.",
    )


def _series(rng: random.Random, labels: list[str]) -> dict[str, int]:
    chosen = rng.sample(labels, k=rng.randrange(3, 6))
    return {label: rng.randrange(5, 300) for label in chosen}


@family("chart-bar", "file", "train")
def _chart_bar(rng: random.Random, world: World) -> Instance:
    data = _series(rng, NAMES)
    listing = ", ".join(f"{k} {v}" for k, v in data.items())
    wording = rng.choice(
        [
            "Plot a bar chart of these sales: {d}.",
            "Make a bar chart of fruit sold: {d}.",
            "Show these numbers as a bar chart: {d}.",
        ]
    )
    code = (
        f"import matplotlib.pyplot as plt\ndata = {data!r}\nplt.bar(list(data), list(data.values()))\n"
        "plt.title('Sales')\nplt.savefig('chart.png')\nprint('saved chart.png')"
    )
    return _file_task(
        wording.format(d=listing), code, Expect("code_interpreter", file_ext=".png"), "Here is the bar chart."
    )


@family("chart-line", "file", "heldout")
def _chart_line(rng: random.Random, world: World) -> Instance:
    data = {m: rng.randrange(-5, 35) for m in MONTHS[: rng.randrange(4, 8)]}
    listing = ", ".join(f"{k} {v}" for k, v in data.items())
    wording = rng.choice(
        [
            "Draw a line chart of these monthly temperatures and save it as an image: {d}.",
            "Make a line graph of this data: {d}.",
        ]
    )
    code = (
        f"import matplotlib.pyplot as plt\ndata = {data!r}\nplt.plot(list(data), list(data.values()), marker='o')\n"
        "plt.savefig('line.png')\nprint('saved line.png')"
    )
    return _file_task(
        wording.format(d=listing), code, Expect("code_interpreter", file_ext=".png"), "Here is the line chart."
    )


# ---------------------------------------------------------------- the browser over the local website

_RESULT = re.compile(r"【(\d+)†([^†】]*)(?:†([^】]*))?】")


def _result_id(observation: str, path: str) -> tuple[int, str] | None:
    """The id and title of the search result or page at ``path`` in an observation."""
    for match in _RESULT.finditer(observation):
        if match.group(3) and match.group(3).endswith(path):
            return int(match.group(1)), match.group(2)
    return None


def _page_id(observation: str) -> tuple[int, str]:
    match = _RESULT.search(observation)
    if match is None:
        raise ValueError("the page observation has no source marker")
    return int(match.group(1)), match.group(2)


def _link(observation: str, path: str) -> str:
    for line in observation.splitlines():
        url = line.rsplit(": ", 1)[-1].strip()
        if line.startswith("- ") and url.endswith(path):
            return url
    raise ValueError(f"no link to {path} on the page")


def _browse(command: str) -> Call:
    return Call("simple_browser", {"command": command})


def _search_and_open(query: str, path: str) -> list[Step]:
    def click(obs: list[str]) -> Call:
        found = _result_id(obs[-1], path)
        if found is None:
            raise ValueError(f"the search for {query!r} did not find {path}")
        return _browse(f"mclick([{found[0]}])")

    return [lambda _obs: _browse(f"search({query!r})"), click]


def _cited(answer: str) -> Step:
    """The final answer about the page opened last, citing it (``{cite}``)."""

    def step(obs: list[str]) -> Answer:
        number, title = _page_id(obs[-1])
        return Answer(answer.format(cite=f"【{number}†{title}】"))

    return step


def two_hop(name: str, path: str, linked: str, answer: str) -> list[Step]:
    """Search for ``name``, open the result at ``path``, follow its link to ``linked``, answer citing that page."""
    return [
        *_search_and_open(name, path),
        lambda obs: _browse(f"open_url({_link(obs[-1], linked)!r})"),
        _cited(answer),
    ]


def one_page(name: str, path: str, question: str, answer: str, value: object) -> Instance:
    """A fact on one page: search for ``name``, open the result at ``path``, answer citing it. ``question`` and
    ``answer`` have ``{n}`` for the name, ``answer`` ``{v}`` for the value and ``{cite}`` for the citation."""
    steps = [*_search_and_open(name, path), _cited(answer.format(n=name, v=value, cite="{cite}"))]
    return Instance([question.format(n=name)], Expect("web_browser", words=[[str(value)]], cite=path), [steps])


@family("browse-town", "browser", "train")
def _browse_town(rng: random.Random, world: World) -> Instance:
    town = rng.choice(world.towns)
    question, answer, value = rng.choice(
        [
            ("Search the web: how many people live in {t}?", "{t} has a population of {v:,} {cite}.", town.population),
            ("Look up when the town of {t} was founded.", "{t} was founded in {v} {cite}.", town.founded),
            ("Who is the mayor of {t}? Please check online.", "The mayor of {t} is {v} {cite}.", town.mayor),
        ]
    )
    expect = Expect(
        "web_browser", words=[[str(value), f"{value:,}" if isinstance(value, int) else str(value)]], cite=town.path
    )
    steps = [*_search_and_open(town.name, town.path), _cited(answer.format(t=town.name, v=value, cite="{cite}"))]
    return Instance([question.format(t=town.name)], expect, [steps])


@family("browse-product-maker", "browser", "train")
def _browse_maker(rng: random.Random, world: World) -> Instance:
    product = rng.choice(world.products)
    maker = product.maker
    question, answer, value = rng.choice(
        [
            (
                "Who founded the company that makes the {p}?",
                "The {p} is made by {m}, founded by {v} {cite}.",
                maker.founder,
            ),
            (
                "In which year was the maker of the {p} founded? Search the web.",
                "{m}, which makes the {p}, was founded in {v} {cite}.",
                maker.founded,
            ),
        ]
    )
    steps = [
        *_search_and_open(product.name, product.path),
        lambda obs: _browse(f"open_url({_link(obs[-1], maker.path)!r})"),
        _cited(answer.format(p=product.name, m=maker.name, v=value, cite="{cite}")),
    ]
    return Instance(
        [question.format(p=product.name)], Expect("web_browser", words=[[str(value)]], cite=maker.path), [steps]
    )


@family("browse-company", "browser", "heldout")
def _browse_company(rng: random.Random, world: World) -> Instance:
    company = rng.choice(world.companies)
    question, answer, value = rng.choice(
        [
            (
                "Where is {n} headquartered? Find it on the web.",
                "{n} is headquartered in {v} {cite}.",
                company.town.name,
            ),
            ("Search online: who founded {n}?", "{n} was founded by {v} {cite}.", company.founder),
        ]
    )
    return one_page(company.name, company.path, question, answer, value)


@family("browse-museum-town", "browser", "heldout")
def _browse_museum(rng: random.Random, world: World) -> Instance:
    museum = rng.choice(world.museums)
    town = museum.town
    question = f"How many people live in the town where the {museum.name} is? Look it up."
    answer = f"The {museum.name} is in {town.name}, which has {town.population:,} inhabitants {{cite}}."
    steps = [
        *_search_and_open(museum.name, museum.path),
        lambda obs: _browse(f"open_url({_link(obs[-1], town.path)!r})"),
        _cited(answer),
    ]
    expect = Expect("web_browser", words=[[str(town.population), f"{town.population:,}"]], cite=town.path)
    return Instance([question], expect, [steps])


# ---------------------------------------------------------------- drawing and editing the last picture

SUBJECTS = [
    ("a red fox sitting in the snow", "fox"),
    ("a lighthouse on a rocky cliff", "lighthouse"),
    ("a steaming bowl of ramen", "ramen"),
    ("a cat wearing a tiny hat", "cat"),
    ("a sailing boat at sunset", "boat"),
    ("a robot reading a book in a library", "robot"),
    ("a small mountain village", "village"),
    ("an owl on a pine branch", "owl"),
    ("a hot air balloon over a lake", "balloon"),
    ("a panda eating bamboo", "panda"),
    ("a castle above the clouds", "castle"),
    ("an old car on a country road", "car"),
    ("a bicycle leaning on a blue door", "bicycle"),
    ("a dragon made of paper", "dragon"),
    ("a cup of coffee on a rainy window sill", "coffee"),
]
CHANGES = [
    ("at night", "night"),
    ("in winter", "winter"),
    ("in the rain", "rain"),
    ("at sunrise", "sunrise"),
    ("in autumn colors", "autumn"),
]
STYLES = [
    ("watercolor", "watercolor"),
    ("pixel art", "pixel"),
    ("oil painting", "oil"),
    ("pencil sketch", "sketch"),
    ("comic book", "comic"),
]
ADDITIONS = [("a rainbow", "rainbow"), ("a small dog", "dog"), ("falling leaves", "leaves"), ("a full moon", "moon")]
DETAIL = "detailed illustration, soft light"


def _draw_steps(prompt: str, answer: str) -> list[Step]:
    return fixed(Call("cogview", {"prompt": prompt}), Answer(answer))


@family("draw", "drawing", "train")
def _draw(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    wording = rng.choice(
        [
            "Draw {s}.",
            "Can you make a picture of {s}?",
            "Please generate an image of {s}.",
            "I'd like a drawing of {s}.",
        ]
    )
    prompt = f"{subject[0].upper()}{subject[1:]}, {DETAIL}"
    return Instance(
        [wording.format(s=subject)],
        Expect("drawing_tool", prompt_words=[[key]]),
        [_draw_steps(prompt, f"Here is {subject}.")],
    )


@family("draw-edit", "drawing", "train")
def _draw_edit(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    change, change_key = rng.choice(CHANGES)
    first = f"{subject[0].upper()}{subject[1:]}, {DETAIL}"
    second = f"{subject[0].upper()}{subject[1:]} {change}, {DETAIL}"
    edit = rng.choice(["Now make it {c}.", "Can you change it so it is {c}?", "Same picture, but {c}."])
    ask = rng.choice(["Draw {s}.", "Make a picture of {s}.", "Please draw {s}.", "Create an image of {s}."])
    turns = [ask.format(s=subject), edit.format(c=change)]
    script = [_draw_steps(first, f"Here is {subject}."), _draw_steps(second, f"Here it is {change}.")]
    return Instance(turns, Expect("drawing_tool", prompt_words=[[key], [change_key]]), script)


@family("draw-style", "drawing", "heldout")
def _draw_style(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    style, style_key = rng.choice(STYLES)
    wording = rng.choice(["Paint {s} in {y} style.", "Create a {y} image of {s}."])
    prompt = f"{subject[0].upper()}{subject[1:]}, {style} style"
    return Instance(
        [wording.format(s=subject, y=style)],
        Expect("drawing_tool", prompt_words=[[key], [style_key]]),
        [_draw_steps(prompt, f"Here is {subject} as {style}.")],
    )


@family("draw-edit-add", "drawing", "heldout")
def _draw_add(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    addition, add_key = rng.choice(ADDITIONS)
    first = f"{subject[0].upper()}{subject[1:]}, {DETAIL}"
    second = f"{subject[0].upper()}{subject[1:]} with {addition}, {DETAIL}"
    turns = [f"Draw {subject}.", f"Add {addition} to the picture."]
    script = [_draw_steps(first, f"Here is {subject}."), _draw_steps(second, f"I added {addition}.")]
    return Instance(turns, Expect("drawing_tool", prompt_words=[[key], [add_key]]), script)


# ---------------------------------------------------------------- choosing among five user functions

CITIES = [
    "Paris",
    "Nairobi",
    "Lima",
    "Osaka",
    "Toronto",
    "Hanoi",
    "Oslo",
    "Cairo",
    "Denver",
    "Chengdu",
    "Porto",
    "Auckland",
]
CURRENCIES = ["USD", "EUR", "CNY", "JPY", "GBP", "CHF"]
SYMBOLS = ["ACME", "GLMX", "ZHPU", "NOVA", "BRKT", "TIDE"]
RESTAURANTS = ["Blue Lotus", "Casa Verde", "The Copper Pot", "Sakura House", "Le Petit Four"]
REMINDERS = ["call my mother", "water the plants", "take the medicine", "buy milk", "send the report"]


def _offered(rng: random.Random, name: str) -> list[str]:
    others = [f.name for f in FUNCTIONS if f.name != name]
    offered = [name, *rng.sample(others, k=4)]
    rng.shuffle(offered)
    return offered


def _function_task(
    rng: random.Random, name: str, question: str, arguments: dict[str, object], answer: str, result_keys: list[str]
) -> Instance:
    """``answer`` is formatted with the function's real result; ``result_keys`` are the result's fields the answer
    must mention."""
    result = BY_NAME[name].call(dict(arguments))
    expect = Expect(
        f"function:{name}", arguments=dict(arguments), result_words=[str(result[key]) for key in result_keys]
    )
    steps = fixed(Call(name, dict(arguments)), Answer(answer.format(**result)))
    return Instance([question], expect, [steps], functions=_offered(rng, name))


@family("fn-weather", "function", "train")
def _fn_weather(rng: random.Random, world: World) -> Instance:
    city = rng.choice(CITIES)
    question = rng.choice(
        ["What's the weather like in {c} right now?", "Is it cold in {c} today?", "Check the weather in {c} for me."]
    ).format(c=city)
    return _function_task(
        rng,
        "get_weather",
        question,
        {"city": city},
        "It is {temperature} degrees and {sky} in {city}.",
        ["temperature"],
    )


@family("fn-currency", "function", "train")
def _fn_currency(rng: random.Random, world: World) -> Instance:
    source, target = rng.sample(CURRENCIES, k=2)
    amount = rng.randrange(5, 5_000)
    question = rng.choice(
        ["How much is {a} {f} in {t}?", "Convert {a} {f} to {t}.", "I have {a} {f}. What is that in {t}?"]
    ).format(a=amount, f=source, t=target)
    return _function_task(
        rng,
        "convert_currency",
        question,
        {"amount": amount, "from_currency": source, "to_currency": target},
        f"{amount} {source} is {{converted}} {{to}}.",
        ["converted"],
    )


@family("fn-stock", "function", "train")
def _fn_stock(rng: random.Random, world: World) -> Instance:
    symbol = rng.choice(SYMBOLS)
    question = rng.choice(
        ["What's the stock price of {s}?", "How much does one {s} share cost now?", "Get me the latest {s} quote."]
    ).format(s=symbol)
    return _function_task(
        rng, "get_stock_price", question, {"symbol": symbol}, "{symbol} is trading at {price} {currency}.", ["price"]
    )


@family("fn-reminder", "function", "train")
def _fn_reminder(rng: random.Random, world: World) -> Instance:
    text, time = rng.choice(REMINDERS), f"{rng.randrange(6, 23):02d}:{rng.choice(['00', '15', '30', '45'])}"
    question = rng.choice(
        ["Remind me to {x} at {t}.", "Set a reminder at {t} to {x}.", "Please remind me at {t}: {x}."]
    ).format(x=text, t=time)
    return _function_task(
        rng,
        "set_reminder",
        question,
        {"text": text, "time": time},
        "Done: I will remind you to {text} at {time}.",
        ["time"],
    )


@family("fn-package", "function", "train")
def _fn_package(rng: random.Random, world: World) -> Instance:
    number = f"PK{rng.randrange(100_000, 999_999)}"
    question = rng.choice(
        ["Where is my parcel {n}?", "Track package {n} please.", "Has my package {n} arrived?"]
    ).format(n=number)
    return _function_task(
        rng,
        "track_package",
        question,
        {"tracking_number": number},
        "Your parcel {tracking_number} is {status}.",
        ["status"],
    )


@family("fn-flights", "function", "heldout")
def _fn_flights(rng: random.Random, world: World) -> Instance:
    origin, destination = rng.sample(CITIES, k=2)
    day = future_day(rng, within=300)
    question = f"Find me a flight from {origin} to {destination} on {day}."
    task = _function_task(
        rng, "search_flights", question, {"origin": origin, "destination": destination, "date": day}, "", []
    )
    flight = BY_NAME["search_flights"].call(task.expect.arguments)["flights"][0]
    task.expect.result_words = [str(flight["price"])]
    task.script = [
        fixed(
            Call("search_flights", task.expect.arguments),
            Answer(f"Flight {flight['number']} leaves at {flight['departs']} for {flight['price']} dollars."),
        )
    ]
    return task


@family("fn-table", "function", "heldout")
def _fn_table(rng: random.Random, world: World) -> Instance:
    restaurant, people = rng.choice(RESTAURANTS), rng.randrange(2, 9)
    time = f"{rng.randrange(18, 22)}:{rng.choice(['00', '30'])}"
    question = rng.choice(["Book a table for {p} at {r} at {t}.", "Reserve {r} for {p} people at {t}, please."]).format(
        p=people, r=restaurant, t=time
    )
    return _function_task(
        rng,
        "book_table",
        question,
        {"restaurant": restaurant, "time": time, "people": people},
        "Your table for {people} at {restaurant} is booked for {time}.",
        ["time"],
    )


@family("fn-localtime", "function", "heldout")
def _fn_localtime(rng: random.Random, world: World) -> Instance:
    city = rng.choice(CITIES)
    question = rng.choice(["What time is it in {c} now?", "What's the local time in {c}?"]).format(c=city)
    return _function_task(
        rng,
        "get_local_time",
        question,
        {"city": city},
        "It is {local_time} in {city} (UTC{utc_offset}).",
        ["local_time"],
    )


# ---------------------------------------------------------------- plain requests that need no tool

HELLO = {
    "French": "Bonjour",
    "Spanish": "Hola",
    "German": "Hallo",
    "Italian": "Ciao",
    "Portuguese": "Olá",
    "Japanese": "Konnichiwa",
    "Chinese": "你好",
    "Swahili": "Jambo",
}
THANKS = {
    "French": "Merci",
    "Spanish": "Gracias",
    "German": "Danke",
    "Italian": "Grazie",
    "Portuguese": "Obrigado",
    "Japanese": "Arigatou",
    "Chinese": "谢谢",
    "Swahili": "Asante",
}
SMALL_TALK = [
    ("Hi there!", "Hello! How can I help you today?"),
    ("Good morning! How are you?", "Good morning! I'm doing well, thank you. What can I do for you?"),
    ("Thanks for your help!", "You're welcome! Happy to help."),
    ("Who are you?", "I'm an AI assistant. I can answer questions, run code, browse the web and draw pictures."),
    ("Tell me a short joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    ("Good night!", "Good night! Sleep well."),
    ("What's your name?", "I'm your AI assistant. You can just call me Assistant."),
    ("Nice to meet you!", "Nice to meet you too! What would you like to do today?"),
    (
        "What can you do?",
        "I can chat, run Python code, look things up on the web, draw pictures and call your functions.",
    ),
    ("Thank you so much!", "My pleasure! Let me know if you need anything else."),
    ("See you later!", "See you later! Have a great day."),
    ("How's it going?", "It's going well, thanks for asking! How can I help?"),
    ("Are you a robot?", "I'm an AI language model, a computer program rather than a robot."),
    ("Say something nice.", "You are doing great, and your curiosity is a wonderful thing."),
    ("I'm feeling tired today.", "I'm sorry to hear that. A short walk, some water and an early night may help."),
    ("Hello!", "Hello! What can I do for you?"),
    ("Hey, can you help me with something?", "Of course! Tell me what you need."),
    ("Good evening.", "Good evening! How can I help you tonight?"),
    ("Do you like music?", "I don't listen to music myself, but I'm happy to talk about it. What do you like?"),
    ("What is your favourite colour?", "I don't have one, but many people love blue. What's yours?"),
    ("I just finished my exams!", "Congratulations! That's a big achievement. Time to relax a little."),
    ("Can you keep a secret?", "I don't remember our conversations after they end, so your secret is safe."),
    ("Tell me something interesting.", "Octopuses have three hearts and blue blood."),
    ("Bye!", "Goodbye! Come back any time."),
]
TIPS = ["sleeping better", "learning a new language", "staying focused at work", "saving money", "writing clearly"]


def _chat(question: str, answer: str, words: list[list[str]]) -> Instance:
    return Instance([question], Expect(None, words=words), [fixed(Answer(answer))])


@family("chat-hello", "chat", "train")
def _chat_hello(rng: random.Random, world: World) -> Instance:
    language = rng.choice(sorted(HELLO))
    hello = HELLO[language]
    question = rng.choice(["Say hello in {l}.", "How do you greet someone in {l}?"]).format(l=language)
    return _chat(question, f"{hello}! That is hello in {language}.", [[hello]])


@family("chat-smalltalk", "chat", "train")
def _chat_smalltalk(rng: random.Random, world: World) -> Instance:
    question, answer = rng.choice(SMALL_TALK)
    return _chat(question, answer, [])


@family("chat-thanks", "chat", "heldout")
def _chat_thanks(rng: random.Random, world: World) -> Instance:
    language = rng.choice(sorted(THANKS))
    question = rng.choice(["How do you say thank you in {l}?", "What is 'thanks' in {l}?"]).format(l=language)
    return _chat(question, f"In {language} you say {THANKS[language]}.", [[THANKS[language]]])


@family("chat-advice", "chat", "heldout")
def _chat_advice(rng: random.Random, world: World) -> Instance:
    topic = rng.choice(TIPS)
    return _chat(f"Give me one tip for {topic}.", "Keep a simple routine and practise a little every day.", [])
