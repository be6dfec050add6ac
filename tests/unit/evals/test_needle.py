"""The needle suite: the haystack's size and the needle's depth, the prompt's budget, scoring, the heat-map grid."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from openglm.evals.base import Outcome
from openglm.evals.suites.needle import (
    ANSWER_TOKENS,
    CHARS_PER_TOKEN,
    DEPTHS,
    FRAME_TOKENS,
    LENGTHS,
    NeedleSuite,
    found,
    grid,
    haystack,
    heat_map,
    needle_of,
    prompt,
)

NEEDLE = "The secret code of the blue vault is 4817."


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_needle_sits_at_its_depth_of_the_haystack(depth: float) -> None:
    text = haystack(20_000, NEEDLE, depth, random.Random(1))
    assert text.count(NEEDLE) == 1
    where = text.index(NEEDLE) / (len(text) - len(NEEDLE))
    assert where == pytest.approx(depth, abs=0.01)
    if depth == 0.0:
        assert text.startswith(NEEDLE)
    if depth == 1.0:
        assert text.endswith(NEEDLE)


@pytest.mark.parametrize("chars", [300, 5_000, 40_000])
def test_the_haystack_is_about_the_size_asked_for(chars: int) -> None:
    text = haystack(chars, NEEDLE, 0.5, random.Random(2))
    assert chars - 120 < len(text) <= chars  # whole sentences: short by less than one


def test_the_filler_is_varied_and_holds_no_digits() -> None:
    text = haystack(30_000, "", 0.0, random.Random(3))
    sentences = [s for s in text.split(". ") if s]
    assert len(set(sentences)) > 0.9 * len(sentences)
    assert not re.search(r"\d", text)


def test_the_same_seed_builds_the_same_haystack() -> None:
    assert haystack(4_000, NEEDLE, 0.25, random.Random(7)) == haystack(4_000, NEEDLE, 0.25, random.Random(7))
    assert haystack(4_000, NEEDLE, 0.25, random.Random(7)) != haystack(4_000, NEEDLE, 0.25, random.Random(8))


def test_tasks_cover_every_length_and_depth_deterministically() -> None:
    tasks = NeedleSuite().tasks(0)
    assert tasks == NeedleSuite().tasks(0)
    assert tasks != NeedleSuite().tasks(1)
    assert {t.family for t in tasks} == {f"len-{n}" for n in LENGTHS}
    assert {t.split for t in tasks} == {"heldout"}
    cells = {(t.data["context_tokens"], t.data["depth"]) for t in tasks}
    assert cells == {(n, d) for n in LENGTHS for d in DEPTHS}
    assert len({t.id for t in tasks}) == len(tasks)
    # One task per family (a quick run) still reaches different depths.
    firsts = {t.family: t.data["depth"] for t in reversed(tasks)}
    assert len(set(firsts.values())) == len(LENGTHS)


@pytest.mark.parametrize("length", LENGTHS)
def test_a_prompt_fits_its_token_budget_and_asks_for_its_needle(length: int) -> None:
    task = next(t for t in NeedleSuite().tasks(0) if t.data["context_tokens"] == length)
    text = prompt(task)
    needle = needle_of(task)
    assert text.count(needle.sentence) == 1
    assert text.endswith(needle.question)
    assert re.findall(r"\d+", text) == [task.data["code"]]  # the code is the only number the model can read
    room = length - ANSWER_TOKENS - FRAME_TOKENS  # what the message may take of the context, in estimated tokens
    assert 0.95 * room < len(text) / CHARS_PER_TOKEN <= room


def test_the_code_is_found_only_as_a_whole_number() -> None:
    assert found("The code is 4817.", "4817")
    assert found("4817", "4817")
    assert not found("The code is 48170.", "4817")
    assert not found("I do not know.", "4817")


def test_grid_averages_cells_and_marks_refused_ones() -> None:
    def outcome(length: int, depth: float, score: float, error: str | None = None) -> Outcome:
        metrics = {"context_tokens": float(length), "depth": depth}
        return Outcome("t", f"len-{length}", "heldout", score == 1.0, score, error=error, metrics=metrics)

    lengths, depths, scores, refused = grid(
        [
            outcome(512, 0.0, 1.0),
            outcome(512, 0.0, 0.0),
            outcome(1024, 0.5, 1.0),
            outcome(9000, 0.0, 0.0, error="prompt is too long"),
        ]
    )
    assert lengths == [512, 1024, 9000]
    assert depths == [0.0, 0.5]
    assert scores == [[0.5, None, 0.0], [None, 1.0, None]]
    assert refused == [[False, False, True], [False, False, False]]


def test_summary_adds_the_score_per_depth() -> None:
    outcomes = [
        Outcome("a", "len-512", "heldout", True, 1.0, metrics={"context_tokens": 512.0, "depth": 0.0}),
        Outcome("b", "len-1024", "heldout", False, 0.0, metrics={"context_tokens": 1024.0, "depth": 0.0}),
        Outcome("c", "len-1024", "heldout", True, 1.0, metrics={"context_tokens": 1024.0, "depth": 1.0}),
    ]
    summary = NeedleSuite().summarize(outcomes)
    assert summary["metrics"] == {"depth 0%": 0.5, "depth 100%": 1.0}
    assert summary["families"] == {"len-1024": 0.5, "len-512": 1.0}


def test_heat_map_is_a_png_with_a_panel_per_model(tmp_path: Path) -> None:
    def outcomes(shift: int) -> list[Outcome]:
        made = []
        for number, task in enumerate(NeedleSuite(lengths=(512, 1024, 16000), trials=1).tasks(0)):
            refused = task.data["context_tokens"] > 8192
            score = 0.0 if refused else float((number + shift) % 2)
            metrics = {"context_tokens": float(task.data["context_tokens"]), "depth": task.data["depth"]}
            made.append(
                Outcome(
                    task.id,
                    task.family,
                    task.split,
                    score == 1.0,
                    score,
                    error="too long" if refused else None,
                    metrics=metrics,
                )
            )
        return made

    path = heat_map({"base": outcomes(0), "ft:base:tuned": outcomes(1)}, tmp_path)
    assert path == tmp_path / "plots" / "needle-heatmap.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
