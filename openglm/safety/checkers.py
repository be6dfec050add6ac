"""Moderation checkers: one registry of kinds (``@CHECKER_KINDS.register("words")``), built from the catalog's
``[[safety.checkers]]`` into named ``Checker`` objects.

A checker reads a text and says what in it breaks the operator's policy (``Hit``: a category and the words that
hit). An *incremental* checker can also read a stream as it grows (``partial=True``: more text may follow, so it
reports nothing that the next words could still change) and says how much of a stream's end must wait for more
text (``holdback``): the stream guard releases the rest. A checker that is not incremental (an LLM judge) reads whole
texts only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidFieldError
from ..registry import Registry
from .config import CheckerSpec

# The categories OpenGLM's own lists and the judge's rubric use; an operator's lists may add others.
CATEGORIES = ("violence", "weapons", "sexual_minors", "sexual", "hate", "self_harm", "drugs", "malware", "fraud")


@dataclass(frozen=True)
class Hit:
    checker: str
    category: str
    # What hit, as the checker read it (normalized text for word lists; empty for a judge's verdict).
    matched: str = ""


class Checker(Protocol):
    name: str
    incremental: bool
    before: int  # characters of released text a hit near the start of what is held needs to see

    async def check(self, text: str, *, partial: bool = False) -> list[Hit]: ...

    def holdback(self, text: str) -> int:
        """How many of ``text``'s last characters a stream must hold until more text decides them."""
        ...


# (model, system prompt, text) → the model's reply; supplied by the run service, which meters the call.
Ask = Callable[[str, str, str], Awaitable[str]]


@dataclass(frozen=True)
class BuildContext:
    ask: Ask | None = None


CheckerFactory = Callable[[str, dict[str, Any], BuildContext], Checker]
CHECKER_KINDS: Registry[CheckerFactory] = Registry("moderation checker")


def build_checkers(specs: Sequence[CheckerSpec], context: BuildContext) -> dict[str, Checker]:
    from . import classifier, judge, words  # noqa: F401  (they register the built-in kinds)

    built: dict[str, Checker] = {}
    for spec in specs:
        if spec.name in built:
            raise ValueError(f"moderation checker {spec.name!r} is configured twice")
        built[spec.name] = CHECKER_KINDS.get(spec.kind)(spec.name, spec.options, context)
    return built


def pick(checkers: dict[str, Checker], names: Sequence[str], what: str) -> tuple[Checker, ...]:
    """The named checkers, in order; a name nothing configures is the operator's mistake or the caller's."""
    unknown = [name for name in names if name not in checkers]
    if unknown:
        known = ", ".join(sorted(checkers)) or "none"
        raise InvalidFieldError(f"{what}: unknown moderation checker {unknown[0]!r}; configured: {known}")
    return tuple(checkers[name] for name in names)


async def check_all(checkers: Sequence[Checker], text: str) -> list[Hit]:
    hits: list[Hit] = []
    for checker in checkers:
        hits.extend(await checker.check(text))
    return hits
