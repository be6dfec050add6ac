"""``needle``: a fact hidden in a long filler text at a chosen depth, asked for at the end.

Measures whether a model still reads its whole context as the context grows: one family per context length
(``len-N``: N tokens of context, the prompt and room for the answer), five depths each (0 % = the first sentence,
100 % = the last). The filler is invented here, sentence by sentence from small word lists, and holds no digits,
so the only number in the prompt is the needle's code. The suite does not know the model's tokenizer: lengths are
turned into characters at ``CHARS_PER_TOKEN``, a little under what SmolLM2's tokenizer gives this filler (4.9), so
that a prompt stays within its budget; ``prompt_tokens`` in an outcome's metrics is what the server counted. A
length over the model's context is the server's refusal: an error outcome in its cell, not a crash.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import Outcome, Suite, Task, default_summary, eval_suites, mean
from ..client import EvalApiError, EvalClient
from ..environment import EvalEnvironment

LENGTHS = (512, 1024, 2048, 4096, 7000)  # context tokens; 7000 fits an 8192-token model with room to spare
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
TRIALS = 2  # needles per (length, depth) cell, each in its own filler
CHARS_PER_TOKEN = 4.8
ANSWER_TOKENS = 24
FRAME_TOKENS = 64  # what the server's chat template adds around the message (a default system prompt, markers)

SUBJECTS = (
    "The old ferryman",
    "A tired cartographer",
    "The village baker",
    "Our neighbour's parrot",
    "The night librarian",
    "A travelling tinsmith",
    "The harbour master",
    "A quiet beekeeper",
    "The orchard keeper",
    "A young violin maker",
    "The lighthouse cook",
    "An elderly clockmaker",
    "The school gardener",
    "A patient weaver",
    "The mountain guide",
    "A cheerful potter",
    "The river postman",
    "A shy glassblower",
    "The museum guard",
    "A restless painter",
)
VERBS = (
    "repainted",
    "counted",
    "forgot about",
    "carried",
    "sketched",
    "polished",
    "mended",
    "rearranged",
    "admired",
    "wrapped",
    "inspected",
    "sorted",
    "watered",
    "described",
    "measured",
    "folded",
    "hid",
    "returned",
    "weighed",
    "cleaned",
)
OBJECTS = (
    "the wooden fence",
    "a basket of pears",
    "the brass lantern",
    "an unfinished letter",
    "the striped umbrella",
    "a jar of honey",
    "the creaking gate",
    "a bundle of maps",
    "the copper kettle",
    "a box of buttons",
    "the rowing boat",
    "a stack of old postcards",
    "the garden bench",
    "a spool of red thread",
    "the stone well",
    "a crate of turnips",
    "the faded curtains",
    "a pair of muddy boots",
    "the weather vane",
    "a tin of peppermints",
)
CLAUSES = (
    "before the rain started",
    "while the kettle was boiling",
    "on a quiet afternoon",
    "as the bells rang for supper",
    "after the market closed",
    "when nobody was watching",
    "under a sky full of clouds",
    "during the long winter",
    "just before sunrise",
    "while humming an old tune",
    "with great care",
    "without saying a word",
    "because the festival was near",
    "as the tide went out",
    "in the light of a single candle",
    "long after the guests had left",
    "while the dog slept by the door",
    "on the first warm day of spring",
    "as the wind shook the shutters",
    "between two cups of tea",
)
NEEDLE_COLOURS = ("blue", "green", "red", "silver", "amber", "violet", "white", "black")
NEEDLE_PLACES = ("vault", "locker", "safe", "cabinet", "chest", "door", "archive", "strongbox")

INTRODUCTION = (
    "Below is a long text. Somewhere in it a secret code is mentioned. Read the text, then answer the question."
)


@dataclass(frozen=True)
class Needle:
    colour: str
    place: str
    code: str

    @property
    def sentence(self) -> str:
        return f"The secret code of the {self.colour} {self.place} is {self.code}."

    @property
    def question(self) -> str:
        return f"Question: What is the secret code of the {self.colour} {self.place}? Answer with the number only."


def filler_sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CLAUSES)}."


def haystack(chars: int, needle: str, depth: float, rng: random.Random) -> str:
    """Filler sentences with ``needle`` inserted at ``depth`` (0..1) of them: at most ``chars`` characters, short of
    it by less than a sentence."""
    sentences: list[str] = []
    size = len(needle)
    while True:
        sentence = filler_sentence(rng)
        if size + 1 + len(sentence) > chars:
            break
        sentences.append(sentence)
        size += 1 + len(sentence)
    sentences.insert(round(depth * len(sentences)), needle)
    return " ".join(sentences)


def needle_of(task: Task) -> Needle:
    return Needle(task.data["colour"], task.data["place"], task.data["code"])


def prompt(task: Task) -> str:
    """The user message of a task: introduction, filler with the needle, question; about its token budget."""
    data = task.data
    needle = needle_of(task)
    frame = len(INTRODUCTION) + len(needle.question) + 4
    chars = int((data["context_tokens"] - ANSWER_TOKENS - FRAME_TOKENS) * CHARS_PER_TOKEN) - frame
    text = haystack(chars, needle.sentence, data["depth"], random.Random(data["filler_seed"]))
    return f"{INTRODUCTION}\n\n{text}\n\n{needle.question}"


def found(answer: str, code: str) -> bool:
    """The code appears as a whole number in the answer (not inside a longer one)."""
    return re.search(rf"(?<!\d){code}(?!\d)", answer) is not None


@eval_suites.register("needle")
class NeedleSuite(Suite):
    name = "needle"
    description = (
        "Needle in a haystack: a secret code hidden at a depth (0–100 %) of invented filler text, asked for at "
        "the end; one family per context length in tokens."
    )

    def __init__(self, lengths: Sequence[int] = LENGTHS, trials: int = TRIALS):
        self.lengths = tuple(lengths)
        self.trials = trials

    def tasks(self, seed: int = 0) -> list[Task]:
        rng = random.Random(f"needle-{seed}")
        tasks = []
        for position, length in enumerate(self.lengths):
            # Each length starts at a different depth, so a quick run (one task per family) still covers depths.
            depths = DEPTHS[position % len(DEPTHS) :] + DEPTHS[: position % len(DEPTHS)]
            for trial in range(self.trials):
                for depth in depths:
                    data = {
                        "context_tokens": length,
                        "depth": depth,
                        "colour": rng.choice(NEEDLE_COLOURS),
                        "place": rng.choice(NEEDLE_PLACES),
                        "code": str(rng.randint(1000, 9999)),
                        "filler_seed": rng.getrandbits(32),
                    }
                    task_id = f"needle-len{length}-d{round(100 * depth)}-t{trial}"
                    tasks.append(Task(task_id, f"len-{length}", "heldout", data))
        return tasks

    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        metrics = {"context_tokens": float(task.data["context_tokens"]), "depth": float(task.data["depth"])}
        code = task.data["code"]
        messages = [{"role": "user", "content": prompt(task)}]
        try:
            reply = await client.reply(model, messages, temperature=0, max_tokens=ANSWER_TOKENS)
        except EvalApiError as exc:  # a length over the model's context: refused by the server, kept in its cell
            return Outcome(task.id, task.family, task.split, False, 0.0, error=str(exc), metrics=metrics)
        if "prompt_tokens" in reply.usage:
            metrics["prompt_tokens"] = float(reply.usage["prompt_tokens"])
        passed = found(reply.content, code)
        detail = f"expected {code}, answered {reply.content.strip()[:120]!r}"
        return Outcome(
            task.id,
            task.family,
            task.split,
            passed,
            1.0 if passed else 0.0,
            latency_s=reply.latency_s,
            detail=detail,
            metrics=metrics,
            # The filler is left out (it is rebuilt from the task's seed): the transcript keeps what was asked.
            transcript=[
                {"role": "user", "content": needle_of(task).question},
                {"role": "assistant", "content": reply.content},
            ],
        )

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """The default summary (its families are the lengths) and the score per depth, over all lengths."""
        summary = default_summary(outcomes)
        by_depth: dict[float, list[float]] = {}
        for outcome in outcomes:
            if "depth" in outcome.metrics:
                by_depth.setdefault(outcome.metrics["depth"], []).append(outcome.score)
        summary["metrics"] = {f"depth {round(100 * d)}%": mean(s) for d, s in sorted(by_depth.items())}
        return summary

    def plots(self, results: dict[str, list[Outcome]], out_dir: Path) -> list[Path]:
        return [heat_map(results, out_dir)] if results else []


def grid(outcomes: Sequence[Outcome]) -> tuple[list[int], list[float], list[list[float | None]], list[list[bool]]]:
    """Lengths, depths, the mean score of each (depth, length) cell (None: no outcome), and which cells were refused."""
    cells: dict[tuple[float, int], list[Outcome]] = {}
    for outcome in outcomes:
        if "depth" in outcome.metrics and "context_tokens" in outcome.metrics:
            key = (outcome.metrics["depth"], int(outcome.metrics["context_tokens"]))
            cells.setdefault(key, []).append(outcome)
    lengths = sorted({length for _, length in cells})
    depths = sorted({depth for depth, _ in cells})
    scores: list[list[float | None]] = []
    refused: list[list[bool]] = []
    for depth in depths:
        groups = [cells.get((depth, length), []) for length in lengths]
        scores.append([mean([o.score for o in group]) if group else None for group in groups])
        refused.append([bool(group) and all(o.error for o in group) for group in groups])
    return lengths, depths, scores, refused


def heat_map(results: dict[str, list[Outcome]], out_dir: Path) -> Path:
    """One panel per model: depth (rows) by context length (columns), the cell's score; grey = refused."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    size = (1.5 + 4.8 * len(results), 4.2)
    figure, axes_row = plt.subplots(1, len(results), figsize=size, squeeze=False, layout="constrained")
    colours = matplotlib.colormaps["RdYlGn"].with_extremes(bad="lightgrey")
    image = None
    for panel, (axes, (model, outcomes)) in enumerate(zip(axes_row[0], results.items(), strict=True)):
        lengths, depths, scores, refused = grid(outcomes)
        percent = [
            [np.nan if score is None or refused[row][column] else 100 * score for column, score in enumerate(line)]
            for row, line in enumerate(scores)
        ]
        image = axes.imshow(
            np.ma.masked_invalid(np.array(percent, float)), cmap=colours, vmin=0, vmax=100, aspect="auto"
        )
        for row, depth_scores in enumerate(scores):
            for column, score in enumerate(depth_scores):
                label = "refused" if refused[row][column] else ("–" if score is None else f"{100 * score:.0f}")
                axes.text(column, row, label, ha="center", va="center", fontsize=8)
        axes.set_xticks(range(len(lengths)), [str(n) for n in lengths])
        axes.set_yticks(range(len(depths)), [f"{round(100 * d)}%" for d in depths])
        axes.set_xlabel("context length (tokens)")
        if panel == 0:
            axes.set_ylabel("needle depth")
        axes.set_title(model)
    if image is not None:
        figure.colorbar(image, ax=list(axes_row[0]), label="code found (%)")
    figure.suptitle("needle: code found, by depth and context length")
    path = out_dir / "plots" / "needle-heatmap.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
