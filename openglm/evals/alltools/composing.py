"""Training-only task families of generator version 7: the steps v6 still got wrong, inside other tasks.

Four held-out families stayed at 0 % through v4–v6, and the eval's transcripts say which step failed: a weekday
asked for got a difference or a month name (no lesson ever wrote ``strftime('%A')``); words counted as characters
(no lesson ever counted words with ``split()``); a company page opened and the wrong fact read from it (no lesson
ever read where a company is based); and a fact about "the town where X is" answered with code (no lesson ever went
from a company's page on to its town's). Each family here teaches one such step as part of a different request —
a trip's return date *and* weekday, whether a caption fits a word limit, a town reached from a company — so the
held-out families still measure whether the skill carries to a request worded and built unlike every lesson: none
asks the weekday of a given date, how many words a sentence has, a company's founder or headquarters directly, or
the population of a museum's town, and no sentence of the held-out ``count-words`` is used.

The v6 adapter also drifted further from the base on plain chat with instructions attached (the ``instructions``
suite: lists, titles and first words). Two more rehearsal families give plain requests one or two such
instructions, in this module's own words (none is the suite's wording, word or phrase), and the base model's own
answer as the lesson, as ``rehearsal.py`` does for requests without them.

All are ``train`` and ``since=7``: versions 5 and 6 are still made without them; version 8 replaces the trip lesson
and the two-rule rehearsal with reworded families (``contrasting.py``).
"""

from __future__ import annotations

import random
from datetime import timedelta

from .breadth import _pick
from .families import _code, _code_task, _day, _printed, two_hop
from .rehearsal import SUBJECTS, _rehearsal
from .tasks import Answer, Expect, Instance, Step, family
from .world import World

# ---------------------------------------------------------------- code: a weekday as part of a date computed


@family("date-trip-weekday", "code", "train", since=7, until=7)  # reworded in v8: contrasting.py
def _trip_weekday(rng: random.Random, world: World) -> Instance:
    return trip_lesson(
        rng,
        [
            "I set off on {d} and travel for {n} days. On what date, and what day of the week, do I get back?",
            "My parcel ships on {d} and takes {n} days. Which date and weekday will it arrive?",
            "A course starts on {d} and lasts {n} days. Give the end date and its weekday.",
        ],
    )


def trip_lesson(rng: random.Random, wordings: list[str]) -> Instance:
    """A start date and a number of days; the code prints the end date and its day's name, the answer says both."""
    start, days = _day(rng), rng.randrange(3, 400)
    end = start + timedelta(days=days)
    question = _pick(rng, wordings, d=start.isoformat(), n=days)
    code = (
        f"from datetime import date, timedelta\nend = date{start.timetuple()[:3]} + timedelta(days={days})\n"
        "print(end, end.strftime('%A'))"
    )

    def answer(obs: list[str]) -> Answer:
        day, weekday = _printed(obs).split()
        return Answer(f"That is {day}, a {weekday}.")

    steps: list[Step] = [lambda _obs: _code(code), answer]
    return Instance([question], Expect("code_interpreter", words=[[end.isoformat()], [end.strftime("%A")]]), [steps])


# ---------------------------------------------------------------- code: words counted with split()

# This module's own sentences (the held-out ``count-words`` family's are never used in training).
LINES = [
    "our new bakery opens on the main square next monday morning",
    "lost grey cat answers to the name of pepper",
    "fresh strawberries for sale at the farm gate all week",
    "join us for a quiet evening of board games and soup",
    "the library will close early on friday for repairs",
    "two tickets to the harbour concert are still available",
    "please leave your muddy boots by the back door",
    "the choir practises every thursday in the old school hall",
]


def _clause(rng: random.Random) -> str:
    words = rng.choice(LINES).split()
    start = rng.randrange(0, len(words) - 4)
    return " ".join(words[start : start + rng.randrange(5, len(words) - start + 1)])


@family("text-word-limit", "code", "train", since=7)
def _word_limit(rng: random.Random, world: World) -> Instance:
    text = _clause(rng)
    count = len(text.split())
    limit = count + rng.choice([-2, -1, 1, 3])
    question = _pick(
        rng,
        [
            'Does this caption fit in {n} words? "{t}"',
            "My headline may have at most {n} words: '{t}'. Is it short enough?",
            'Check whether "{t}" stays within a {n}-word limit.',
        ],
        n=limit,
        t=text,
    )
    verdict = "it fits" if count <= limit else "it is too long"
    return _code_task(
        question, f"print(len({text!r}.split()))", count, f"It has {{out}} words, so {verdict} for {limit}."
    )


@family("text-words-with-letter", "code", "train", since=7)
def _words_with_letter(rng: random.Random, world: World) -> Instance:
    text = _clause(rng)
    letter = rng.choice(sorted({c for c in text if c.isalpha()}))
    count = sum(letter in word for word in text.split())
    question = _pick(
        rng,
        [
            "How many words in '{t}' contain the letter '{c}'?",
            'In "{t}", count the words that have the letter {c} in them.',
        ],
        t=text,
        c=letter,
    )
    code = f"print(sum({letter!r} in word for word in {text!r}.split()))"
    return _code_task(question, code, count, f"{{out}} of its words contain '{letter}'.")


# ---------------------------------------------------------------- the browser: reading a company's page


@family("browse-maker-home", "browser", "train", since=7)
def _maker_home(rng: random.Random, world: World) -> Instance:
    """The product's page, then its maker's, where the headquarters are read (not the founding facts)."""
    product = rng.choice(world.products)
    maker = product.maker
    question = _pick(
        rng,
        [
            "Where is the company that makes the {p} based?",
            "In which town does the maker of the {p} have its headquarters? Search the web.",
        ],
        p=product.name,
    )
    answer = f"The {product.name} is made by {maker.name}, whose headquarters are in {maker.town.name} {{cite}}."
    steps = two_hop(product.name, product.path, maker.path, answer)
    return Instance([question], Expect("web_browser", words=[[maker.town.name]], cite=maker.path), [steps])


@family("browse-company-town", "browser", "train", since=7)
def _company_town(rng: random.Random, world: World) -> Instance:
    """A fact about the town a company is based in: the company's page, then the town's (a word of searching in
    one wording of three)."""
    company = rng.choice(world.companies)
    town = company.town
    population = f"{town.population:,}"
    question, fact, words = rng.choice(
        [
            (
                "Who is the mayor of the town where {c} has its headquarters?",
                f"whose mayor is {town.mayor}",
                [town.mayor],
            ),
            (
                "When was the town that {c} is based in founded? Check online.",
                f"founded in {town.founded}",
                [str(town.founded)],
            ),
            (
                "What is the population of {c}'s home town?",
                f"with a population of {population}",
                [str(town.population), population],
            ),
        ]
    )
    steps = two_hop(company.name, company.path, town.path, f"{company.name} is based in {town.name}, {fact} {{cite}}.")
    return Instance([question.format(c=company.name)], Expect("web_browser", words=[words], cite=town.path), [steps])


# ---------------------------------------------------------------- rehearsal: plain requests with instructions

ASKS = ("Tell me {s}.", "Could you go over {s}?", "Talk me through {s}.", "I'm curious about {s}. What can you say?")
RULES = {  # kind → wordings (this module's own; ``{n}`` a count, ``{w}`` a word or phrase)
    "list": (
        "List {n} points, one per line, each line beginning with a dash.",
        "Answer as a dashed list of {n} items.",
    ),
    "title": ("Begin with a title inside double angle brackets, for example <<On bread>>.",),
    "first_word": ("Let the first word of your reply be '{w}'.", "Open your reply with the word '{w}'."),
    "last_words": ('Close your reply with the words "{w}"',),
    "paragraphs": ("Use {n} paragraphs with an empty line between them.",),
    "small_letters": ("Use only small letters, no capitals anywhere.",),
    "mention": ("Mention the word '{w}' in your reply.",),
    "short": ("Say it in no more than {n} words.",),
    "no_commas": ("Leave out commas entirely.",),
}
RULE_WORDS = {
    "first_word": ("Sure", "Yes", "Imagine", "Once", "Look"),
    "last_words": ("See you soon.", "Have a nice day.", "That is my answer."),
    "mention": ("window", "river", "blanket", "candle", "morning"),
}
COUNTS = {"list": (3, 4, 5), "paragraphs": (2, 3), "short": (20, 30, 50)}
APART = {frozenset(("list", "paragraphs")), frozenset(("title", "first_word"))}  # never asked together


def _rule(rng: random.Random, kind: str) -> str:
    wording = rng.choice(RULES[kind])
    return wording.format(n=rng.choice(COUNTS.get(kind, (0,))), w=rng.choice(RULE_WORDS.get(kind, ("",))))


def instructed(rng: random.Random, rules: int, apart: set[frozenset[str]] = APART) -> Instance:
    kinds = rng.sample(sorted(RULES), k=rules)
    while frozenset(kinds) in apart:
        kinds = rng.sample(sorted(RULES), k=rules)
    request = _pick(rng, list(ASKS), s=rng.choice(SUBJECTS))
    question = " ".join([request, *(_rule(rng, kind) for kind in kinds)])
    return _rehearsal(question)


@family("rehearse-one-rule", "chat", "train", since=7)
def _one_rule(rng: random.Random, world: World) -> Instance:
    return instructed(rng, 1)


@family("rehearse-two-rules", "chat", "train", since=7, until=7)  # its contradicting pairs kept apart in v8
def _two_rules(rng: random.Random, world: World) -> Instance:
    return instructed(rng, 2)
