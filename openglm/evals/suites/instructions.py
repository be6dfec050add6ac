"""``instructions``: everyday requests with verifiable instructions attached (at most N words, exactly N bullet
points, all lowercase, a JSON object with a given key…), each checked by a small pure function.

It guards plain chat: tuning a model for tools must not make it worse at doing what a user plainly asks. A task is
one everyday prompt with one or two instructions; its score is the share of them followed and it passes when all
are. The family is the task's first instruction kind. Prompts, keywords and phrasings were written for OpenGLM;
every task is held out (the suite measures, it is never training data).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..base import Outcome, Suite, Task, default_summary, eval_suites, mean
from ..client import EvalApiError, EvalClient
from ..environment import EvalEnvironment

TASKS_PER_KIND = 5
MAX_TOKENS = 300


@dataclass(frozen=True)
class Prompt:
    text: str
    topic: str  # a word the answer would naturally use (what "do not use the word" forbids)


PROMPTS = (
    Prompt("Describe a good way to spend a rainy Sunday at home.", "home"),
    Prompt("Explain to a ten-year-old why we have seasons.", "sun"),
    Prompt("Give some advice to someone learning to ride a bicycle.", "bicycle"),
    Prompt("Write a short note inviting the neighbours to a garden party.", "garden"),
    Prompt("Suggest how to keep houseplants healthy during the winter.", "water"),
    Prompt("Explain what a library card is good for.", "books"),
    Prompt("Describe the smell of fresh bread to someone who has never baked.", "bread"),
    Prompt("Give tips for packing a suitcase for a week-long trip.", "clothes"),
    Prompt("Explain why people enjoy looking at the sea.", "waves"),
    Prompt("Write a thank-you message to a friend who helped you move house.", "help"),
    Prompt("Recommend a simple breakfast for a busy morning.", "breakfast"),
    Prompt("Describe what makes someone a good neighbour.", "neighbour"),
    Prompt("Tell me how to make a cup of tea.", "tea"),
    Prompt("Explain how to plan a small picnic in the park.", "picnic"),
    Prompt("Write a short review of an imaginary cafe called The Green Spoon.", "coffee"),
    Prompt("Give advice for the first day at a new job.", "job"),
    Prompt("Describe an ideal weekend walk in the countryside.", "walk"),
    Prompt("Explain why sleep matters for students.", "sleep"),
    Prompt("Suggest games that children can play indoors.", "games"),
    Prompt("Describe a busy train station early in the morning.", "train"),
)
KEYWORDS = ("lantern", "Tuesday", "compass", "pepper", "harbour", "ribbon", "puzzle", "orchard")
END_PHRASES = ("Hope this helps.", "That is all for now.", "Thanks for asking!", "Any other questions?")
START_WORDS = ("Certainly", "Well", "Honestly", "Today", "First")
JSON_KEYS = ("answer", "summary", "reply", "result")


# The checkers: pure functions of the answer and the instruction's parameters.


def word_count(text: str) -> int:
    return len(re.findall(r"\w+(?:['’-]\w+)*", text))


def check_max_words(text: str, n: int) -> bool:
    return word_count(text) <= n


def bullet_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*[-*•]\s+\S", line)]


def check_bullets(text: str, n: int) -> bool:
    return len(bullet_lines(text)) == n


def check_keyword(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def check_forbidden_word(text: str, word: str) -> bool:
    return not check_keyword(text, word)


def check_lowercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.lower()


def check_uppercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.upper()


def _tail(text: str) -> str:
    """Text compared at its end: case, surrounding space, quotes and final punctuation do not matter."""
    return text.strip().strip("\"'“”‘’").rstrip(".!?。！？ ").lower()


def check_end_phrase(text: str, phrase: str) -> bool:
    return _tail(text).endswith(_tail(phrase))


def json_object(text: str) -> Any:
    """The answer read as JSON (a Markdown code fence around it allowed); None when it is not JSON."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    try:
        return json.loads(fenced.group(1) if fenced else body)
    except ValueError:
        return None


def check_json_key(text: str, key: str) -> bool:
    value = json_object(text)
    return isinstance(value, dict) and key in value


def check_start_word(text: str, word: str) -> bool:
    first = re.match(r"[\W_]*(\w+)", text)
    return first is not None and first.group(1).lower() == word.lower()


def check_no_commas(text: str) -> bool:
    return "," not in text and "，" not in text


def paragraphs(text: str) -> list[str]:
    return [part for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]


def check_paragraphs(text: str, n: int) -> bool:
    return len(paragraphs(text)) == n


def check_title(text: str) -> bool:
    return re.search(r"<<[^<>\n]+>>", text) is not None


@dataclass(frozen=True)
class Kind:
    """One kind of instruction: its parameters drawn for a prompt, how it is worded, how it is checked."""

    draw: Callable[[random.Random, Prompt], dict[str, Any]]
    wording: Callable[[dict[str, Any]], str]
    check: Callable[..., bool]  # check(answer, **parameters)


KINDS: dict[str, Kind] = {
    "max_words": Kind(
        lambda rng, _: {"n": rng.choice((15, 25, 40, 60))},
        lambda p: f"Answer in at most {p['n']} words.",
        check_max_words,
    ),
    "bullets": Kind(
        lambda rng, _: {"n": rng.choice((2, 3, 4, 5))},
        lambda p: f"Your answer must be exactly {p['n']} bullet points, each on its own line starting with '- '.",
        check_bullets,
    ),
    "keyword": Kind(
        lambda rng, _: {"word": rng.choice(KEYWORDS)},
        lambda p: f"Use the word '{p['word']}' somewhere in your answer.",
        check_keyword,
    ),
    "forbidden_word": Kind(
        lambda _, prompt: {"word": prompt.topic},
        lambda p: f"Do not use the word '{p['word']}' anywhere in your answer.",
        check_forbidden_word,
    ),
    "lowercase": Kind(
        lambda rng, _: {},
        lambda p: "Write your whole answer in lowercase letters; no capital letters at all.",
        check_lowercase,
    ),
    "uppercase": Kind(
        lambda rng, _: {},
        lambda p: "Write your whole answer in capital letters only.",
        check_uppercase,
    ),
    "end_phrase": Kind(
        lambda rng, _: {"phrase": rng.choice(END_PHRASES)},
        lambda p: f'End your answer with the exact phrase "{p["phrase"]}" and nothing after it.',
        check_end_phrase,
    ),
    "json_key": Kind(
        lambda rng, _: {"key": rng.choice(JSON_KEYS)},
        lambda p: f'Reply with a JSON object only, which has the key "{p["key"]}" holding your answer.',
        check_json_key,
    ),
    "start_word": Kind(
        lambda rng, _: {"word": rng.choice(START_WORDS)},
        lambda p: f"Start your answer with the word '{p['word']}'.",
        check_start_word,
    ),
    "no_commas": Kind(
        lambda rng, _: {},
        lambda p: "Do not use any commas in your answer.",
        check_no_commas,
    ),
    "paragraphs": Kind(
        lambda rng, _: {"n": rng.choice((2, 3))},
        lambda p: f"Write exactly {p['n']} paragraphs, separated from each other by one blank line.",
        check_paragraphs,
    ),
    "title": Kind(
        lambda rng, _: {},
        lambda p: "Give your answer a title wrapped in double angle brackets, such as <<a title>>.",
        check_title,
    ),
}

# Pairs no answer can satisfy together (or only by a contortion no user would ask for): never in one task.
CONFLICTS = {
    frozenset(pair)
    for pair in (
        ("lowercase", "uppercase"),
        ("bullets", "paragraphs"),
        ("json_key", "bullets"),
        ("json_key", "paragraphs"),
        ("json_key", "title"),
        ("json_key", "end_phrase"),
        ("json_key", "start_word"),
        ("json_key", "uppercase"),
        ("title", "start_word"),
    )
}


def compatible(first: str, second: str) -> bool:
    return first != second and frozenset((first, second)) not in CONFLICTS


def followed(kind: str, parameters: dict[str, Any], answer: str) -> bool:
    """Whether ``answer`` follows one instruction (an empty answer follows none)."""
    return bool(answer.strip()) and KINDS[kind].check(answer, **parameters)


@eval_suites.register("instructions")
class InstructionsSuite(Suite):
    name = "instructions"
    description = (
        "Verifiable instructions on everyday requests (word limits, bullet counts, keywords, case, JSON, "
        "titles…): the share of instructions followed; guards plain chat against damage from tuning."
    )

    def __init__(self, kinds: Collection[str] | None = None, max_tokens: int = MAX_TOKENS):
        unknown = set(kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown instruction kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.kinds = [name for name in KINDS if kinds is None or name in kinds]
        self.max_tokens = max_tokens

    def tasks(self, seed: int = 0) -> list[Task]:
        tasks = []
        for kind in self.kinds:
            rng = random.Random(f"instructions-{seed}-{kind}")  # a kind's tasks do not depend on the others chosen
            for number in range(TASKS_PER_KIND):
                prompt = rng.choice(PROMPTS)
                chosen = [kind]
                if number % 2 == 1:  # every other task carries a second instruction
                    chosen.append(rng.choice([other for other in KINDS if compatible(kind, other)]))
                instructions: list[dict[str, Any]] = [
                    {"kind": k, "parameters": KINDS[k].draw(rng, prompt)} for k in chosen
                ]
                wordings = [KINDS[i["kind"]].wording(i["parameters"]) for i in instructions]
                data = {"prompt": " ".join([prompt.text, *wordings]), "instructions": instructions}
                tasks.append(Task(f"instructions-{kind}-{number}", kind, "heldout", data))
        return tasks

    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        messages = [{"role": "user", "content": task.data["prompt"]}]
        given = {"instructions": float(len(task.data["instructions"])), "followed": 0.0}
        try:
            reply = await client.reply(model, messages, temperature=0, max_tokens=self.max_tokens)
        except EvalApiError as exc:  # a failed request follows none of the task's instructions
            return Outcome(task.id, task.family, task.split, False, 0.0, error=str(exc), metrics=given)
        results = [(i["kind"], followed(i["kind"], i["parameters"], reply.content)) for i in task.data["instructions"]]
        kept = [kind for kind, ok in results if ok]
        missed = [kind for kind, ok in results if not ok]
        return Outcome(
            task.id,
            task.family,
            task.split,
            passed=not missed,
            score=len(kept) / len(results),
            latency_s=reply.latency_s,
            # An agent asked a plain question may still call a tool (and answer from its result): kept, so the
            # report says how often tool use, not the writing, is what took an instruction away.
            tools=[name for name, _ in reply.tool_calls],
            detail=f"followed: {', '.join(kept) or 'none'}; missed: {', '.join(missed) or 'none'}",
            metrics={**given, "followed": float(len(kept))},
            transcript=[*messages, {"role": "assistant", "content": reply.content}],
        )

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """The default summary, and IFEval's two views: tasks with every instruction followed, and instructions."""
        summary = default_summary(outcomes)
        given = sum(o.metrics.get("instructions", 0.0) for o in outcomes)
        kept = sum(o.metrics.get("followed", 0.0) for o in outcomes)
        summary["metrics"] = {
            "all followed (tasks)": mean([1.0 if o.passed else 0.0 for o in outcomes]),
            "followed (instructions)": kept / given if given else 0.0,
            "no tool called": mean([0.0 if o.tools else 1.0 for o in outcomes]),
        }
        return summary
