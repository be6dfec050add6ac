"""Training-only task families for breadth (generator version 2).

The first adapter learnt its 21 training families almost perfectly and generalised to 15 % of the held-out ones:
a 135M model copies patterns, so it must see many sub-tasks of each kind before "a quantitative question → run
code that prints the answer → quote what it printed" becomes the pattern rather than "a product → print(a * b)".
Every family here is ``train``. None is a held-out family in other words: no percentages, spreads, weekdays or
word counts; no line charts or multiplication tables; no company headquarters or museum-to-town hops; no styles or
added objects in drawings; no held-out function is ever called (``function_tasks`` keeps a held-out function's
templates out of the training wordings by construction); no thanks or advice in plain chat.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from ..function_tasks import function_task, functions_of
from ..functions import BY_NAME
from .families import (
    DETAIL,
    NAMES,
    SUBJECTS,
    WORDS,
    _chat,
    _code_task,
    _day,
    _draw_steps,
    _file_task,
    _numbers,
    _offered,
    _series,
    one_page,
)
from .tasks import Answer, Call, Expect, Instance, family, fixed
from .world import World

# ---------------------------------------------------------------- code: many small quantitative sub-tasks


def _pick(rng: random.Random, wordings: list[str], **values: object) -> str:
    return rng.choice(wordings).format(**values)


@family("arith-difference", "code", "train")
def _difference(rng: random.Random, world: World) -> Instance:
    a, b = rng.randrange(10_000, 9_999_999), rng.randrange(1_000, 999_999)
    question = _pick(rng, ["What is {a} minus {b}?", "Subtract {b} from {a}.", "How much is {a} - {b}?"], a=a, b=b)
    return _code_task(question, f"print({a} - {b})", a - b, f"{a} − {b} = {{out}}.")


@family("arith-division", "code", "train")
def _division(rng: random.Random, world: World) -> Instance:
    a, b = rng.randrange(100, 999_999), rng.randrange(3, 997)
    question = _pick(
        rng,
        ["Divide {a} by {b}, to 3 decimal places.", "What is {a} / {b}? Round to 3 decimals.", "{a} divided by {b}?"],
        a=a,
        b=b,
    )
    return _code_task(question, f"print(round({a} / {b}, 3))", round(a / b, 3), f"{a} ÷ {b} ≈ {{out}}.")


@family("arith-remainder", "code", "train")
def _remainder(rng: random.Random, world: World) -> Instance:
    a, b = rng.randrange(1_000, 9_999_999), rng.randrange(3, 97)
    question = _pick(
        rng, ["What is the remainder when {a} is divided by {b}?", "Compute {a} mod {b}.", "{a} % {b} = ?"], a=a, b=b
    )
    return _code_task(question, f"print({a} % {b})", a % b, "The remainder is {out}.")


@family("bill-split", "code", "train")
def _bill_split(rng: random.Random, world: World) -> Instance:
    total, people = rng.randrange(3_000, 99_999) / 100, rng.randrange(2, 13)
    question = _pick(
        rng,
        [
            "Our dinner bill is {t} yuan and we are {p} people. How much does each pay?",
            "Split {t} dollars evenly between {p} friends.",
        ],
        t=total,
        p=people,
    )
    return _code_task(question, f"print(round({total} / {people}, 2))", round(total / people, 2), "Each pays {out}.")


@family("sum-list", "code", "train")
def _sum_list(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    question = _pick(rng, ["Add up these numbers: {v}.", "What is the total of {v}?", "Sum {v} for me."], v=listing)
    return _code_task(question, f"print(sum([{listing}]))", sum(values), "The total is {out}.")


@family("stats-range", "code", "train")
def _range(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    question = _pick(
        rng,
        ["What is the range (max minus min) of {v}?", "How far apart are the largest and smallest of {v}?"],
        v=listing,
    )
    code = f"values = [{listing}]\nprint(max(values) - min(values))"
    return _code_task(question, code, max(values) - min(values), "The range is {out}.")


@family("stats-max", "code", "train")
def _largest(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)
    listing = ", ".join(map(str, values))
    biggest = rng.random() < 0.5
    question = _pick(
        rng,
        ["Which is the {w} of {v}?", "Find the {w} number in this list: {v}."],
        w="largest" if biggest else "smallest",
        v=listing,
    )
    code = f"print({'max' if biggest else 'min'}([{listing}]))"
    return _code_task(question, code, max(values) if biggest else min(values), "It is {out}.")


@family("sort-numbers", "code", "train")
def _sort(rng: random.Random, world: World) -> Instance:
    values = _numbers(rng)[:7]
    listing = ", ".join(map(str, values))
    question = _pick(
        rng, ["Sort these numbers from smallest to largest: {v}.", "Put {v} in ascending order."], v=listing
    )
    instance = _code_task(question, f"print(sorted([{listing}]))", 0, "In order: {out}.")
    instance.expect = Expect("code_interpreter", numbers=[float(v) for v in sorted(values)])
    return instance


@family("math-sqrt", "code", "train")
def _sqrt(rng: random.Random, world: World) -> Instance:
    n = rng.randrange(2, 999_999)
    question = _pick(
        rng, ["What is the square root of {n}, to 4 decimals?", "Calculate sqrt({n}) rounded to 4 places."], n=n
    )
    code = f"import math\nprint(round(math.sqrt({n}), 4))"
    return _code_task(question, code, round(math.sqrt(n), 4), f"√{n} ≈ {{out}}.")


@family("math-factorial", "code", "train")
def _factorial(rng: random.Random, world: World) -> Instance:
    n = rng.randrange(8, 25)
    question = _pick(rng, ["What is {n} factorial?", "Compute {n}!.", "How much is the factorial of {n}?"], n=n)
    code = f"import math\nprint(math.factorial({n}))"
    return _code_task(question, code, math.factorial(n), f"{n}! = {{out}}.")


@family("math-gcd", "code", "train")
def _gcd(rng: random.Random, world: World) -> Instance:
    k = rng.randrange(2, 60)
    a, b = k * rng.randrange(10, 900), k * rng.randrange(10, 900)
    question = _pick(
        rng,
        ["What is the greatest common divisor of {a} and {b}?", "Find gcd({a}, {b}).", "GCD of {a} and {b}?"],
        a=a,
        b=b,
    )
    code = f"import math\nprint(math.gcd({a}, {b}))"
    return _code_task(question, code, math.gcd(a, b), "The greatest common divisor is {out}.")


@family("math-prime", "code", "train")
def _prime(rng: random.Random, world: World) -> Instance:
    n = rng.randrange(1_000, 99_999)
    is_prime = all(n % d for d in range(2, math.isqrt(n) + 1))
    question = _pick(rng, ["Is {n} a prime number?", "Check whether {n} is prime."], n=n)
    code = f"n = {n}\nprint('prime' if all(n % d for d in range(2, int(n ** 0.5) + 1)) else 'not prime')"
    instance = _code_task(question, code, 0, f"{n} is {{out}}.")
    instance.expect = Expect("code_interpreter", words=[["is prime" if is_prime else "not prime"]])
    return instance


@family("math-circle", "code", "train")
def _circle(rng: random.Random, world: World) -> Instance:
    r = rng.randrange(2, 500) / 10
    question = _pick(
        rng,
        ["What is the area of a circle with radius {r} cm?", "A round table has a radius of {r} cm. Its area?"],
        r=r,
    )
    code = f"import math\nprint(round(math.pi * {r} ** 2, 2))"
    return _code_task(question, code, round(math.pi * r**2, 2), "The area is {out} cm².")


@family("convert-temperature", "code", "train")
def _temperature(rng: random.Random, world: World) -> Instance:
    c = rng.randrange(-400, 450) / 10
    question = _pick(rng, ["Convert {c} °C to Fahrenheit.", "What is {c} degrees Celsius in Fahrenheit?"], c=c)
    code = f"print(round({c} * 9 / 5 + 32, 1))"
    return _code_task(question, code, round(c * 9 / 5 + 32, 1), f"{c} °C is {{out}} °F.")


@family("convert-distance", "code", "train")
def _distance(rng: random.Random, world: World) -> Instance:
    km = rng.randrange(1, 5_000)
    question = _pick(rng, ["How many miles is {k} km?", "Convert {k} kilometres to miles, 2 decimals."], k=km)
    return _code_task(
        question, f"print(round({km} / 1.609344, 2))", round(km / 1.609344, 2), f"{km} km is {{out}} miles."
    )


@family("convert-seconds", "code", "train")
def _seconds(rng: random.Random, world: World) -> Instance:
    s = rng.randrange(3_700, 400_000)
    question = _pick(
        rng, ["How many hours and minutes is {s} seconds?", "Turn {s} seconds into hours and minutes."], s=s
    )
    code = f"s = {s}\nprint(f'{{s // 3600}} hours {{s % 3600 // 60}} minutes')"
    instance = _code_task(question, code, 0, f"{s} seconds is {{out}}.")
    instance.expect = Expect("code_interpreter", numbers=[s // 3600, s % 3600 // 60])
    return instance


@family("date-before", "code", "train")
def _date_before(rng: random.Random, world: World) -> Instance:
    end, days = _day(rng), rng.randrange(10, 3_000)
    question = _pick(
        rng, ["What date was {n} days before {d}?", "Go back {n} days from {d}: which date is it?"], n=days, d=end
    )
    code = f"from datetime import date, timedelta\nprint(date{end.timetuple()[:3]} - timedelta(days={days}))"
    instance = _code_task(question, code, 0, "It was {out}.")
    instance.expect = Expect("code_interpreter", words=[[(end - timedelta(days=days)).isoformat()]])
    return instance


@family("date-age", "code", "train")
def _age(rng: random.Random, world: World) -> Instance:
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 28_000))
    on = born + timedelta(days=rng.randrange(400, 30_000))
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    question = _pick(
        rng,
        ["Someone born on {b} is how old on {o}?", "How old was a person born {b} on {o}, in whole years?"],
        b=born,
        o=on,
    )
    code = (
        f"from datetime import date\nborn, on = date{born.timetuple()[:3]}, date{on.timetuple()[:3]}\n"
        "print(on.year - born.year - ((on.month, on.day) < (born.month, born.day)))"
    )
    return _code_task(question, code, years, "They are {out} years old.")


@family("text-reverse", "code", "train")
def _reverse(rng: random.Random, world: World) -> Instance:
    word = rng.choice(WORDS)
    question = _pick(rng, ["Reverse the word '{w}'.", "What is '{w}' spelled backwards?"], w=word)
    instance = _code_task(question, f"print({word!r}[::-1])", 0, f"'{word}' backwards is '{{out}}'.")
    instance.expect = Expect("code_interpreter", words=[[word[::-1]]])
    return instance


@family("text-vowels", "code", "train")
def _vowels(rng: random.Random, world: World) -> Instance:
    word = rng.choice(WORDS)
    question = _pick(rng, ["How many vowels are in '{w}'?", "Count the vowels in the word {w}."], w=word)
    code = f"print(sum(c in 'aeiou' for c in {word!r}))"
    return _code_task(question, code, sum(c in "aeiou" for c in word), f"'{word}' has {{out}} vowels.")


# ---------------------------------------------------------------- files


PEOPLE = ["Ann", "Bao", "Carla", "Dev", "Eli", "Fatima", "Goro", "Hugo", "Iris", "Jonas"]


@family("csv-from-data", "file", "train")
def _csv_data(rng: random.Random, world: World) -> Instance:
    scores = {name: rng.randrange(40, 101) for name in rng.sample(PEOPLE, k=rng.randrange(3, 7))}
    listing = ", ".join(f"{k} {v}" for k, v in scores.items())
    question = _pick(
        rng,
        ["Save these exam scores as a CSV file: {d}.", "Put this in a CSV with name and score columns: {d}."],
        d=listing,
    )
    code = (
        f"import csv\nscores = {scores!r}\nwith open('scores.csv', 'w', newline='') as f:\n    w = csv.writer(f)\n"
        "    w.writerow(['name', 'score'])\n    w.writerows(scores.items())\nprint('saved scores.csv')"
    )
    rows = [["name", "score"], *([k, str(v)] for k, v in scores.items())]
    expect = Expect("code_interpreter", file_ext=".csv", csv_rows=rows)
    return _file_task(question, code, expect, f"Here is scores.csv with {len(scores)} rows.")


ITEMS = ["eggs", "rice", "tea", "soap", "bread", "onions", "coffee", "milk", "tomatoes", "butter"]


@family("text-file", "file", "train")
def _text_file(rng: random.Random, world: World) -> Instance:
    items = rng.sample(ITEMS, k=rng.randrange(3, 7))
    question = _pick(
        rng,
        ["Write my shopping list to a text file: {i}.", "Make a .txt file listing {i}, one per line."],
        i=", ".join(items),
    )
    code = (
        f"items = {items!r}\nwith open('shopping.txt', 'w') as f:\n"
        "    f.write('\\n'.join(items) + '\\n')\nprint('saved shopping.txt')"
    )
    return _file_task(question, code, Expect("code_interpreter", file_ext=".txt"), "Here is shopping.txt.")


@family("chart-pie", "file", "train")
def _chart_pie(rng: random.Random, world: World) -> Instance:
    data = _series(rng, NAMES)
    listing = ", ".join(f"{k} {v}" for k, v in data.items())
    question = _pick(rng, ["Make a pie chart of {d}.", "Show the share of each as a pie chart: {d}."], d=listing)
    code = (
        f"import matplotlib.pyplot as plt\ndata = {data!r}\nplt.pie(list(data.values()), labels=list(data))\n"
        "plt.savefig('pie.png')\nprint('saved pie.png')"
    )
    return _file_task(question, code, Expect("code_interpreter", file_ext=".png"), "Here is the pie chart.")


# ---------------------------------------------------------------- the browser: one hop to other facts


@family("browse-product", "browser", "train")
def _browse_product(rng: random.Random, world: World) -> Instance:
    product = rng.choice(world.products)
    question, answer, value = rng.choice(
        [
            ("How much does the {n} cost? Look it up.", "The {n} costs {v} dollars {cite}.", product.price),
            ("Search the web: when was the {n} released?", "The {n} came out in {v} {cite}.", product.released),
        ]
    )
    return one_page(product.name, product.path, question, answer, value)


@family("browse-museum", "browser", "train")
def _browse_museum_info(rng: random.Random, world: World) -> Instance:
    museum = rng.choice(world.museums)
    question, answer, value = rng.choice(
        [
            ("What are the opening hours of the {n}? Check online.", "The {n} is open {v} {cite}.", museum.opens),
            ("Find out how much a ticket to the {n} costs.", "A ticket to the {n} costs {v} {cite}.", museum.ticket),
        ]
    )
    return one_page(museum.name, museum.path, question, answer, value)


# ---------------------------------------------------------------- drawing: places, and recolouring an edit

PLACES = [("in Paris", "Paris"), ("in a desert", "desert"), ("under the sea", "sea"), ("on the moon", "moon")]
COLOURS = ["blue", "green", "golden", "pink", "purple"]


@family("draw-place", "drawing", "train")
def _draw_place(rng: random.Random, world: World) -> Instance:
    (subject, key), (place, place_key) = rng.choice(SUBJECTS), rng.choice(PLACES)
    question = _pick(
        rng, ["Draw {s} {p}.", "Generate a picture of {s} {p}.", "Show me an image of {s} {p}."], s=subject, p=place
    )
    prompt = f"{subject[0].upper()}{subject[1:]} {place}, {DETAIL}"
    return Instance(
        [question],
        Expect("drawing_tool", prompt_words=[[key], [place_key]]),
        [_draw_steps(prompt, f"Here is {subject} {place}.")],
    )


@family("draw-recolour", "drawing", "train")
def _draw_recolour(rng: random.Random, world: World) -> Instance:
    subject, key = rng.choice(SUBJECTS)
    colour = rng.choice(COLOURS)
    first = f"{subject[0].upper()}{subject[1:]}, {DETAIL}"
    second = f"{subject[0].upper()}{subject[1:]}, mostly {colour}, {DETAIL}"
    ask = _pick(rng, ["Paint me {s}.", "Could you draw {s}?", "An image of {s}, please."], s=subject)
    edit = _pick(rng, ["Make it {c}.", "Change the colours to {c}.", "Try again in {c} tones."], c=colour)
    script = [_draw_steps(first, f"Here is {subject}."), _draw_steps(second, f"Here it is in {colour}.")]
    return Instance([ask, edit], Expect("drawing_tool", prompt_words=[[key], [colour]]), script)


# ---------------------------------------------------------------- user functions, in the shared wordings


def _scalars(result: dict[str, object]) -> list[tuple[str, object]]:
    return [(key, value) for key, value in result.items() if isinstance(value, str | int | float)]


def _summary(result: dict[str, object]) -> str:
    return "Done: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in _scalars(result)) + "."


def _fn_task(rng: random.Random, wording: str) -> Instance:
    """Any training function of the pool, asked in one of the function-calling suite's training wordings (dates
    and times as people write them, optional arguments only when stated), among four other offered functions."""
    target = rng.choice(functions_of("train"))
    task = function_task(rng, target, wording)
    call = task.calls[0]
    result = BY_NAME[call.name].call(dict(call.arguments))
    expect = Expect(
        f"function:{call.name}", arguments=dict(call.arguments), result_words=[str(v) for _, v in _scalars(result)[:1]]
    )
    steps = fixed(Call(call.name, dict(call.arguments)), Answer(_summary(result)))
    return Instance([task.request], expect, [steps], functions=_offered(rng, target.name))


@family("fn-any-imperative", "function", "train")
def _fn_imperative(rng: random.Random, world: World) -> Instance:
    return _fn_task(rng, "imperative")


@family("fn-any-question", "function", "train")
def _fn_question(rng: random.Random, world: World) -> Instance:
    return _fn_task(rng, "question")


# ---------------------------------------------------------------- plain chat: answered from what the model knows

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Norway": "Oslo",
    "Italy": "Rome",
    "Germany": "Berlin",
    "China": "Beijing",
    "Brazil": "Brasília",
    "Spain": "Madrid",
}
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "happy": "sad",
    "open": "closed",
    "light": "dark",
    "early": "late",
    "full": "empty",
    "old": "young",
    "loud": "quiet",
}
PETS = {"cat": ["Luna", "Milo", "Tiger"], "dog": ["Buddy", "Rex", "Daisy"], "fish": ["Bubbles", "Nemo", "Finn"]}
MORE_TALK = [
    ("What's up?", "Not much, just here and ready to help. What's on your mind?"),
    ("I'm bored.", "How about a short walk, a new song or a small puzzle? I can suggest one if you like."),
    ("You are very helpful.", "Thank you, that is kind of you to say!"),
    ("Happy birthday to me!", "Happy birthday! I hope your day is full of good things."),
    ("Do you dream?", "No, I don't sleep or dream, but I enjoy hearing about dreams."),
    ("I love rainy days.", "Rainy days are cosy: a warm drink and a good book make them perfect."),
    ("Can we just chat for a bit?", "Of course! What would you like to talk about?"),
    ("What do you think about cats?", "Cats are curious and independent, and many people find them great company."),
    ("Goodbye and take care.", "You too! Take care."),
    ("I'm learning to cook.", "That's wonderful! Start with simple dishes and you'll improve quickly."),
]


@family("chat-capital", "chat", "train")
def _chat_capital(rng: random.Random, world: World) -> Instance:
    country = rng.choice(sorted(CAPITALS))
    capital = CAPITALS[country]
    question = _pick(rng, ["What is the capital of {c}?", "Which city is the capital of {c}?"], c=country)
    return _chat(question, f"The capital of {country} is {capital}.", [[capital]])


@family("chat-opposite", "chat", "train")
def _chat_opposite(rng: random.Random, world: World) -> Instance:
    word = rng.choice(sorted(OPPOSITES))
    question = _pick(rng, ["What is the opposite of '{w}'?", "Give me the antonym of {w}."], w=word)
    return _chat(question, f"The opposite of '{word}' is '{OPPOSITES[word]}'.", [[OPPOSITES[word]]])


@family("chat-pet-name", "chat", "train")
def _chat_pet(rng: random.Random, world: World) -> Instance:
    pet = rng.choice(sorted(PETS))
    names = PETS[pet]
    question = _pick(rng, ["Suggest a name for my new {p}.", "I just got a {p}. What should I call it?"], p=pet)
    return _chat(question, f"How about {names[0]}? {names[1]} or {names[2]} would be lovely too.", [])


@family("chat-more-talk", "chat", "train")
def _chat_more(rng: random.Random, world: World) -> Instance:
    question, answer = rng.choice(MORE_TALK)
    return _chat(question, answer, [])
