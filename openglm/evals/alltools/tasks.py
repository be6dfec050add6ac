"""What an All Tools task is: the user's turns, what success means, and how a teacher would solve it.

A family makes instances from a random generator and a world. Each instance carries its own checks
(``Expect``) and a teacher ``Script``: per user turn, the steps a competent model takes, each a function of the
observations the turn's tools returned so far (a search's result ids, say), so training data built by running
the script through the real agent is right by construction.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import AGENT_TOOLS
from .world import World

BUILTIN_TOOLS = list(AGENT_TOOLS)  # offered in every task, in this order


@dataclass(frozen=True)
class Call:
    """A tool call the teacher writes: a built-in's function (python, simple_browser, cogview) or a user function."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    text: str


@dataclass(frozen=True)
class Rehearse:
    """The student's own base model answers (greedy, up to ``max_tokens``): a lesson that keeps what the base
    does for plain requests, so tuning for tools does not change it."""

    max_tokens: int


Step = Callable[[list[str]], Call | Answer | Rehearse]  # observations of this turn so far → the next reply


@dataclass
class Expect:
    """How a run is judged, on the last turn unless said otherwise."""

    tool: str | None  # the tool the last turn must use: a built-in type, "function:<name>", or None (no tool at all)
    numbers: list[float] = field(default_factory=list)  # each must appear in the final answer
    words: list[list[str]] = field(default_factory=list)  # for each group, one of its words in the final answer
    file_ext: str = ""  # a file with this extension among the code's outputs
    csv_rows: list[list[str]] = field(default_factory=list)  # the CSV file's rows (header included), if any
    cite: str = ""  # the answer links this page (a path on the website)
    prompt_words: list[list[str]] = field(default_factory=list)  # the last drawing prompt holds one of each group
    arguments: dict[str, Any] = field(default_factory=dict)  # the function's arguments (by structure)
    result_words: list[str] = field(default_factory=list)  # the answer after the function's result mentions these


@dataclass
class Instance:
    turns: list[str]
    expect: Expect
    script: list[list[Step]]  # per turn
    functions: list[str] = field(default_factory=list)  # user functions offered, in order

    def task_data(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"turns": self.turns, "functions": self.functions, "expect": asdict(self.expect)}


@dataclass(frozen=True)
class Family:
    name: str
    category: str  # code | file | browser | drawing | function | chat
    split: str  # train | heldout
    make: Callable[[random.Random, World], Instance]
    since: int = 1  # the data generator version that added it: older versions' data is made without it
    until: int | None = None  # the last generator version that trains on it (replaced by a later family); None: all

    def trains_in(self, version: int) -> bool:
        """Whether generator ``version``'s data has lessons of this family."""
        return self.split == "train" and self.since <= version and (self.until is None or version <= self.until)


families: dict[str, Family] = {}


def family(
    name: str, category: str, split: str, since: int = 1, until: int | None = None
) -> Callable[[Callable[[random.Random, World], Instance]], Any]:
    def register(make: Callable[[random.Random, World], Instance]) -> Callable[[random.Random, World], Instance]:
        if name in families:
            raise ValueError(f"task family {name!r} is defined twice")
        families[name] = Family(name, category, split, make, since, until)
        return make

    return register


def fixed(*steps: Call | Answer | Rehearse) -> list[Step]:
    """Steps that do not depend on what the tools return."""
    return [_constant(step) for step in steps]


def _constant(step: Call | Answer | Rehearse) -> Step:
    def reply(observations: list[str]) -> Call | Answer | Rehearse:
        return step

    return reply
