"""Training-only task families of generator version 5: rehearsal of plain requests.

Each lesson is a plain request — an explanation, a description, a short piece of writing, some with a shape asked
for (a length, a list, a tone) — answered by the student's own base model (``Rehearse``), not by a script. Every
earlier version taught short fixed answers ("Here is the bar chart.") and the tuned agent drifted from the base on
plain chat (the ``instructions`` suite: 1.7 → 2.5 → 4.2 points below it); these lessons show the adapter that a
plain request, under the All Tools prompt, is answered as the base model answers it.

Topics and wordings are this module's own: none is the ``instructions`` suite's, whose requests and instruction
wordings stay unseen, so that suite still measures what tuning did to plain chat.
"""

from __future__ import annotations

import random

from .breadth import _pick
from .tasks import Expect, Instance, Rehearse, family, fixed
from .world import World

REHEARSAL_TOKENS = 300  # as long as an instructions-suite answer may be

SUBJECTS = (
    "how a rainbow forms",
    "why bread rises",
    "how bees make honey",
    "what a compost heap does",
    "why the moon has phases",
    "how a lighthouse helps ships",
    "what makes a good friend",
    "how to care for a goldfish",
    "why we should drink water",
    "how a kite flies",
    "what happens at a post office",
    "how to start learning the guitar",
    "why autumn leaves change colour",
    "how to write a birthday card",
    "what a museum guide does",
    "how to keep a room tidy",
    "why people like music",
    "how a snowman is built",
    "what to bring to a beach day",
    "how clouds make rain",
    "why stretching before running helps",
    "how to plant tomato seeds",
    "what a farmer does in spring",
    "how a recipe is followed step by step",
)
ASKS = (
    "Explain {s}.",
    "Can you tell me {s}?",
    "Write a short paragraph about {s}.",
    "I'd like to understand {s}. Please explain.",
    "Describe {s} in simple words.",
)
SHAPES = (
    "Keep it to two or three sentences.",
    "Use a numbered list.",
    "Make it sound cheerful.",
    "Write it as a short poem.",
    "Write it for a young child.",
    "Make it about fifty words long.",
    "Put the most important point first.",
    "Finish with a question for me.",
    "Avoid technical words.",
    "Split it into a few short lines.",
)


def _rehearsal(question: str) -> Instance:
    # Judged as any plain request: no tool and an answer of its own (the base's words are the lesson).
    return Instance([question], Expect(None), [fixed(Rehearse(REHEARSAL_TOKENS))])


@family("rehearse-explain", "chat", "train")
def _rehearse_explain(rng: random.Random, world: World) -> Instance:
    return _rehearsal(_pick(rng, list(ASKS), s=rng.choice(SUBJECTS)))


@family("rehearse-shaped", "chat", "train")
def _rehearse_shaped(rng: random.Random, world: World) -> Instance:
    question = _pick(rng, list(ASKS), s=rng.choice(SUBJECTS))
    return _rehearsal(f"{question} {rng.choice(SHAPES)}")
