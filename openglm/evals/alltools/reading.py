"""Training-only task families of generator version 3: reading the tool's result in new ways.

The v2 adapter failed most on held-out tasks whose answer has to be *read* from what a tool returned in a way no
training family showed (a weekday's name printed by code, a word count), on two-hop browsing (it answered after
the first page with a fact it never read) and on plain requests it met with a tool. These families add more of
each skill on other sub-tasks: code that prints a word or a count the answer quotes; two pages to open before
answering; edits that change one thing of the last picture; everyday questions answered from what the model
knows. All are ``train``; none is a held-out family reworded (no weekdays, word counts, percentages or spreads; no
museum-to-town or company hops; no styles or added objects; no thanks or tips; no held-out function).
"""

from __future__ import annotations

import calendar
import random
from datetime import timedelta

from .breadth import _pick
from .families import (
    DETAIL,
    SUBJECTS,
    _browse,
    _chat,
    _cited,
    _code_task,
    _day,
    _draw_steps,
    _link,
    _search_and_open,
)
from .tasks import Expect, Instance, Step, family
from .world import World

# ---------------------------------------------------------------- code whose printed word or count is the answer


@family("date-month", "code", "train")
def _date_month(rng: random.Random, world: World) -> Instance:
    start, days = _day(rng), rng.randrange(20, 900)
    end = start + timedelta(days=days)
    question = _pick(
        rng,
        ["In which month is the date {n} days after {d}?", "Which month will it be {n} days after {d}?"],
        n=days,
        d=start.isoformat(),
    )
    code = (
        f"from datetime import date, timedelta\nday = date{start.timetuple()[:3]} + timedelta(days={days})\n"
        "print(day.strftime('%B %Y'))"
    )
    instance = _code_task(question, code, 0, "It will be {out}.")
    instance.expect = Expect("code_interpreter", words=[[end.strftime("%B")]])
    return instance


@family("leap-year", "code", "train")
def _leap_year(rng: random.Random, world: World) -> Instance:
    year = rng.randrange(1600, 2400)
    question = _pick(rng, ["Is {y} a leap year?", "Check whether the year {y} is a leap year."], y=year)
    code = (
        f"import calendar\nprint('{year} is a leap year' if calendar.isleap({year}) else '{year} is not a leap year')"
    )
    instance = _code_task(question, code, 0, "{out}.")
    instance.expect = Expect("code_interpreter", words=[["is a leap" if calendar.isleap(year) else "not a leap"]])
    return instance


@family("days-in-month", "code", "train")
def _days_in_month(rng: random.Random, world: World) -> Instance:
    year, month = rng.randrange(1900, 2100), rng.randrange(1, 13)
    question = _pick(
        rng,
        ["How many days are there in {m} {y}?", "How many days does {m} {y} have?"],
        m=calendar.month_name[month],
        y=year,
    )
    code = f"import calendar\nprint(calendar.monthrange({year}, {month})[1])"
    days = calendar.monthrange(year, month)[1]
    return _code_task(question, code, days, f"{calendar.month_name[month]} {year} has {{out}} days.")


LETTER_WORDS = [
    "pineapple",
    "umbrella",
    "rhythm",
    "kangaroo",
    "dictionary",
    "photograph",
    "yesterday",
    "chocolate",
    "adventure",
    "crocodile",
    "lemonade",
    "volcano",
]
PHRASES = [
    "green tea with honey",
    "the river flows to the sea",
    "a lantern in the window",
    "seven silver spoons",
    "bright stars over quiet hills",
    "an orange kite on a windy beach",
    "fresh bread from the corner bakery",
]


@family("word-length", "code", "train")
def _word_length(rng: random.Random, world: World) -> Instance:
    word = rng.choice(LETTER_WORDS)
    question = _pick(rng, ["How many letters are in the word '{w}'?", "How long is '{w}', in letters?"], w=word)
    return _code_task(question, f"print(len({word!r}))", len(word), f"'{word}' has {{out}} letters.")


@family("text-longest", "code", "train")
def _longest_word(rng: random.Random, world: World) -> Instance:
    phrase = rng.choice(PHRASES)
    longest = max(phrase.split(), key=len)
    question = _pick(
        rng, ["Which is the longest word in '{p}'?", "Find the longest word in this phrase: {p}."], p=phrase
    )
    instance = _code_task(question, f"print(max({phrase!r}.split(), key=len))", 0, "The longest word is '{out}'.")
    instance.expect = Expect("code_interpreter", words=[[longest]])
    return instance


@family("text-upper", "code", "train")
def _upper(rng: random.Random, world: World) -> Instance:
    phrase = rng.choice(PHRASES)
    question = _pick(rng, ["Write '{p}' in capital letters.", "Convert '{p}' to upper case."], p=phrase)
    instance = _code_task(question, f"print({phrase!r}.upper())", 0, "In capitals: {out}")
    instance.expect = Expect("code_interpreter", words=[[phrase.upper()]])
    return instance


# ---------------------------------------------------------------- the browser: two pages before the answer


def _two_pages(first: tuple[str, str], second: tuple[str, str], question: str, answer: str, winner: str) -> Instance:
    """Search and open the page of each of two things (name, path), then answer citing the second."""
    steps: list[Step] = [*_search_and_open(*first), *_search_and_open(*second), _cited(answer)]
    return Instance([question], Expect("web_browser", words=[[winner]], cite=second[1]), [steps])


@family("browse-compare-products", "browser", "train")
def _compare_products(rng: random.Random, world: World) -> Instance:
    a, b = rng.sample(world.products, k=2)
    while a.price == b.price:
        a, b = rng.sample(world.products, k=2)
    cheaper = rng.random() < 0.5
    winner = min(a, b, key=lambda p: p.price) if cheaper else max(a, b, key=lambda p: p.price)
    wording = (
        ["Which is cheaper, the {a} or the {b}? Look both up.", "Search the web: is the {a} or the {b} cheaper?"]
        if cheaper
        else ["Which costs more, the {a} or the {b}? Look both up.", "Search the web: is the {a} or the {b} dearer?"]
    )
    question = _pick(rng, wording, a=a.name, b=b.name)
    verdict = "cheaper" if cheaper else "more expensive"
    answer = (
        f"The {a.name} costs {a.price} dollars and the {b.name} {b.price} dollars, "
        f"so the {winner.name} is {verdict} {{cite}}."
    )
    return _two_pages((a.name, a.path), (b.name, b.path), question, answer, winner.name)


@family("browse-compare-towns", "browser", "train")
def _compare_towns(rng: random.Random, world: World) -> Instance:
    a, b = rng.sample(world.towns, k=2)
    while a.founded == b.founded:
        a, b = rng.sample(world.towns, k=2)
    older = a if a.founded < b.founded else b
    question = _pick(
        rng,
        ["Which town is older, {a} or {b}? Check online.", "Was {a} or {b} founded first? Search it."],
        a=a.name,
        b=b.name,
    )
    answer = f"{a.name} was founded in {a.founded} and {b.name} in {b.founded}, so {older.name} is older {{cite}}."
    return _two_pages((a.name, a.path), (b.name, b.path), question, answer, older.name)


@family("browse-maker-founded", "browser", "train")
def _maker_founded(rng: random.Random, world: World) -> Instance:
    """The two-hop of ``browse-product-maker`` asked other ways: the product's page first, then its maker's."""
    product = rng.choice(world.products)
    maker = product.maker
    question = _pick(
        rng,
        [
            "How old is the company behind the {p}? Give its founding year.",
            "The {p}: who started the firm that makes it?",
        ],
        p=product.name,
    )
    wants_year = "year" in question
    value = maker.founded if wants_year else maker.founder
    fact = f"was founded in {value}" if wants_year else f"was founded by {value}"
    steps: list[Step] = [
        *_search_and_open(product.name, product.path),
        lambda obs: _browse(f"open_url({_link(obs[-1], maker.path)!r})"),
        _cited(f"The {product.name} is made by {maker.name}, which {fact} {{cite}}."),
    ]
    return Instance([question], Expect("web_browser", words=[[str(value)]], cite=maker.path), [steps])


# ---------------------------------------------------------------- drawing: one change to the last picture

VIEWS = [("seen from above", "above"), ("up close", "close"), ("from far away", "far"), ("from the side", "side")]
MOODS = [("cheerful", "cheerful"), ("calm", "calm"), ("mysterious", "mysterious"), ("gloomy", "gloomy")]


def _edit(rng: random.Random, change: str, change_key: str, edits: list[str], done: str) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    first = f"{subject[0].upper()}{subject[1:]}, {DETAIL}"
    second = f"{subject[0].upper()}{subject[1:]}, {change}, {DETAIL}"
    ask = _pick(rng, ["Draw {s}.", "A picture of {s}, please.", "Can you draw {s}?"], s=subject)
    turns = [ask, rng.choice(edits).format(c=change)]
    script = [_draw_steps(first, f"Here is {subject}."), _draw_steps(second, done.format(c=change))]
    return Instance(turns, Expect("drawing_tool", prompt_words=[[key], [change_key]]), script)


@family("draw-view", "drawing", "train")
def _draw_view(rng: random.Random, world: World) -> Instance:
    view, key = rng.choice(VIEWS)
    return _edit(rng, view, key, ["Show it {c}.", "Now the same thing {c}."], "Here it is {c}.")


@family("draw-mood", "drawing", "train")
def _draw_mood(rng: random.Random, world: World) -> Instance:
    mood, key = rng.choice(MOODS)
    return _edit(rng, f"{mood} mood", key, ["Make it feel more {c}.", "Give it a {c} mood."], "Here it is, {c}.")


# ---------------------------------------------------------------- plain questions: answered from what it knows

MEANINGS = {
    "generous": "willing to give more than is needed",
    "ancient": "very old, from a long time ago",
    "fragile": "easily broken",
    "curious": "eager to know or learn something",
    "humble": "not proud, modest",
    "vast": "very large in size or amount",
    "brave": "ready to face danger or pain",
    "tiny": "very small",
}
JOKES = [
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "Why don't eggs tell jokes? They would crack each other up.",
    "What do you call a sleeping dinosaur? A dino-snore.",
    "Why did the bicycle fall over? It was two tired.",
]
FEELINGS = {
    "sad": "I'm sorry you feel sad. Do you want to talk about what happened?",
    "tired": "That sounds exhausting. Maybe a short rest or an early night would help.",
    "nervous": "Feeling nervous is normal before something important. Take a slow breath; you'll do fine.",
    "happy": "That's great to hear! What made your day so good?",
    "lonely": "I'm sorry you feel lonely. I'm here to chat, and reaching out to a friend might help too.",
}
FACTS = [
    ("How many legs does a spider have?", "A spider has eight legs.", "eight"),
    ("How many days are there in a week?", "There are seven days in a week.", "seven"),
    ("What colour is the sky on a clear day?", "On a clear day the sky is blue.", "blue"),
    ("How many continents are there?", "There are seven continents.", "seven"),
    ("What do bees make?", "Bees make honey.", "honey"),
    ("Which animal is known as the king of the jungle?", "The lion is known as the king of the jungle.", "lion"),
    ("What is frozen water called?", "Frozen water is ice.", "ice"),
    ("How many hours are in a day?", "A day has 24 hours.", "24"),
]


@family("chat-meaning", "chat", "train")
def _chat_meaning(rng: random.Random, world: World) -> Instance:
    word = rng.choice(sorted(MEANINGS))
    question = _pick(rng, ["What does the word '{w}' mean?", "Define {w}."], w=word)
    return _chat(question, f"'{word.capitalize()}' means {MEANINGS[word]}.", [])


@family("chat-joke", "chat", "train")
def _chat_joke(rng: random.Random, world: World) -> Instance:
    question = rng.choice(["Tell me a joke.", "Make me laugh.", "Do you know a funny joke?", "Say something funny."])
    return _chat(question, rng.choice(JOKES), [])


@family("chat-feelings", "chat", "train")
def _chat_feelings(rng: random.Random, world: World) -> Instance:
    feeling = rng.choice(sorted(FEELINGS))
    question = _pick(rng, ["I feel {f} today.", "I'm a bit {f} right now."], f=feeling)
    return _chat(question, FEELINGS[feeling], [])


@family("chat-facts", "chat", "train")
def _chat_facts(rng: random.Random, world: World) -> Instance:
    question, answer, word = rng.choice(FACTS)
    return _chat(question, answer, [[word]])
