"""A small invented world, generated from a seed, served as a website for the browser tasks.

Towns, companies, products and museums with facts and links between them (a product's page links its maker, a
museum's page its town), so one-page and two-hop questions have exactly one right answer. Evals and training data
use worlds of different seeds: what a tuned model may have memorized from its data does not answer an eval.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kl", "st", "tr", "sh", "gr"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "x"]
TOWN_ENDINGS = ["ford", "ton", "vale", "mere", "bury", "wick", "haven", "stead"]
COMPANY_KINDS = ["Works", "Labs", "Industries", "Systems", "Foundry", "Instruments", "Kitchens", "Motors"]
PRODUCT_KINDS = ["kettle", "bicycle", "lamp", "drone", "backpack", "camera", "guitar", "tent", "scooter", "watch"]
FIRST_NAMES = [
    "Ada",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Freya",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kemal",
    "Lena",
    "Mateo",
    "Nia",
    "Oskar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tova",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
]
MUSEUM_KINDS = ["Museum of Clocks", "Glass Museum", "Railway Museum", "Museum of Maps", "Toy Museum", "Salt Museum"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)).capitalize()


def _slug(name: str) -> str:
    return "-".join("".join(c for c in name.lower() if c.isalnum() or c == " ").split())


@dataclass(frozen=True)
class Town:
    name: str
    population: int
    founded: int
    mayor: str

    @property
    def path(self) -> str:
        return f"/towns/{_slug(self.name)}.html"

    @property
    def title(self) -> str:
        return f"{self.name} (town)"


@dataclass(frozen=True)
class Company:
    name: str
    founder: str
    founded: int
    town: Town

    @property
    def path(self) -> str:
        return f"/companies/{_slug(self.name)}.html"

    @property
    def title(self) -> str:
        return f"{self.name} (company)"


@dataclass(frozen=True)
class Product:
    name: str
    kind: str
    price: int
    released: int
    maker: Company

    @property
    def path(self) -> str:
        return f"/products/{_slug(self.name)}.html"

    @property
    def title(self) -> str:
        return f"{self.name} ({self.kind})"


@dataclass(frozen=True)
class Museum:
    name: str
    opens: str
    ticket: int
    town: Town

    @property
    def path(self) -> str:
        return f"/museums/{_slug(self.name)}.html"

    @property
    def title(self) -> str:
        return self.name


class World:
    def __init__(self, seed: int | str, towns: int = 24, companies: int = 24, products: int = 40, museums: int = 16):
        rng = random.Random(f"world-{seed}")
        names: set[str] = set()

        def unique(make: object) -> str:
            while True:
                name = make()  # type: ignore[operator]
                if name not in names:
                    names.add(name)
                    return str(name)

        def person() -> str:
            return f"{rng.choice(FIRST_NAMES)} {_word(rng, 2)}"

        self.towns = [
            Town(
                unique(lambda: _word(rng, 1) + rng.choice(TOWN_ENDINGS)),
                rng.randrange(2_000, 900_000),
                rng.randrange(1200, 1950),
                person(),
            )
            for _ in range(towns)
        ]
        self.companies = [
            Company(
                unique(lambda: f"{_word(rng, 2)} {rng.choice(COMPANY_KINDS)}"),
                person(),
                rng.randrange(1890, 2020),
                rng.choice(self.towns),
            )
            for _ in range(companies)
        ]
        self.products = []
        for _ in range(products):
            kind = rng.choice(PRODUCT_KINDS)
            name = unique(
                lambda kind=kind: f"{_word(rng, 2)} {rng.choice(['One', 'Pro', 'Mini', 'Air', 'X', '2'])} {kind}"
            )
            self.products.append(
                Product(name, kind, rng.randrange(19, 1999), rng.randrange(2001, 2026), rng.choice(self.companies))
            )
        self.museums = [
            Museum(
                unique(lambda: f"{_word(rng, 2)} {rng.choice(MUSEUM_KINDS)}"),
                f"{rng.randrange(8, 11):02d}:00-{rng.randrange(16, 20):02d}:00",
                rng.randrange(5, 40),
                rng.choice(self.towns),
            )
            for _ in range(museums)
        ]

    def pages(self) -> dict[str, str]:
        """Path → HTML of every page (an index that links them all, for the search index's crawl)."""
        pages = {}
        for town in self.towns:
            pages[town.path] = _page(
                town.title,
                [
                    f"{town.name} is a town with a population of {town.population:,} people.",
                    f"It was founded in {town.founded}. The mayor of {town.name} is {town.mayor}.",
                ],
            )
        for company in self.companies:
            pages[company.path] = _page(
                company.title,
                [
                    f"{company.name} was founded in {company.founded} by {company.founder}.",
                    f"Its headquarters are in {_link(company.town.path, company.town.name)}.",
                ],
            )
        for product in self.products:
            pages[product.path] = _page(
                product.title,
                [
                    f"The {product.name} is a {product.kind} released in {product.released}.",
                    f"It costs {product.price} dollars. It is made by {_link(product.maker.path, product.maker.name)}.",
                ],
            )
        for museum in self.museums:
            pages[museum.path] = _page(
                museum.title,
                [
                    f"The {museum.name} is open daily from {museum.opens}. A ticket costs {museum.ticket} dollars.",
                    f"The museum is in {_link(museum.town.path, museum.town.name)}.",
                ],
            )
        links = [_link(path, path.rsplit("/", 1)[1].removesuffix(".html").replace("-", " ")) for path in sorted(pages)]
        pages["/index.html"] = _page("Directory", [" · ".join(links)])
        return pages


def _link(path: str, text: str) -> str:
    return f"<a href='{html.escape(path)}'>{html.escape(text)}</a>"


def _page(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head><title>{html.escape(title)}</title></head>"
        f"<body><article><h1>{html.escape(title)}</h1>{body}</article></body></html>"
    )
