"""The instructions suite: every checker on an answer that follows its instruction and one that does not; tasks."""

from __future__ import annotations

from typing import Any

import pytest

from openglm.evals.suites import instructions as suite
from openglm.evals.suites.instructions import KINDS, InstructionsSuite, compatible, followed

# (kind, parameters, an answer that follows it, an answer that does not)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("max_words", {"n": 5}, "Tea is best when fresh.", "Tea is best when it is fresh."),
    ("bullets", {"n": 3}, "Pack light:\n- shirts\n* socks\n• a book", "- shirts\n- socks"),
    ("bullets", {"n": 2}, "- one\n- two", "- one\n- two\n- three"),
    ("keyword", {"word": "lantern"}, "Bring a Lantern along.", "Bring the lanterns along."),
    (
        "forbidden_word",
        {"word": "tea"},
        "Boil water; steep the leaves; enjoy the teapot.",
        "Steep the Tea for three minutes.",
    ),
    ("lowercase", {}, "steep it for three minutes.", "Steep it for three minutes."),
    ("uppercase", {}, "STEEP IT FOR 3 MINUTES!", "STEEP IT FOR 3 Minutes!"),
    ("end_phrase", {"phrase": "Hope this helps."}, "Water daily. hope this helps!", "Hope this helps. Water daily."),
    ("json_key", {"key": "answer"}, '```json\n{"answer": "Rest well."}\n```', '{"reply": "Rest well."}'),
    ("json_key", {"key": "answer"}, '{"answer": "Rest well.", "mood": "calm"}', 'Sure! {"answer": "Rest well."}'),
    ("start_word", {"word": "Certainly"}, "**Certainly!** Here it is.", "Sure, certainly."),
    ("no_commas", {}, "Walk slowly and breathe.", "Walk slowly, and breathe."),
    ("no_commas", {}, "One two three.", "One，two."),
    ("paragraphs", {"n": 2}, "First part.\n\n  \nSecond part.\n", "First part.\nStill the first.\n\nSecond.\n\nThird."),
    ("title", {}, "<<Morning at the Station>>\nTrains arrive.", "<Morning>\n<<\nTrains>>"),
]


@pytest.mark.parametrize(("kind", "parameters", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_checker_accepts_a_following_answer_and_refuses_another(
    kind: str, parameters: dict[str, Any], good: str, bad: str
) -> None:
    assert KINDS[kind].check(good, **parameters) is True
    assert KINDS[kind].check(bad, **parameters) is False


def test_every_kind_has_checker_cases() -> None:
    assert {case[0] for case in CASES} == set(KINDS)


def test_an_empty_answer_follows_nothing() -> None:
    for kind, parameters, _, _ in CASES:
        assert not followed(kind, parameters, "  \n")
    assert followed("no_commas", {}, "fine")


def test_word_count_counts_contractions_and_hyphenated_words_once() -> None:
    assert suite.word_count("It's a week-long trip, isn't it?") == 6  # it's, a, week-long, trip, isn't, it


def test_tasks_are_deterministic_per_seed_and_all_held_out() -> None:
    first, again, other = InstructionsSuite().tasks(0), InstructionsSuite().tasks(0), InstructionsSuite().tasks(1)
    assert first == again
    assert [t.data for t in first] != [t.data for t in other]
    assert 40 <= len(first) <= 60
    assert {t.split for t in first} == {"heldout"}
    assert {t.family for t in first} == set(KINDS)
    assert len({t.id for t in first}) == len(first)


def test_a_task_has_one_or_two_compatible_instructions_worded_in_its_prompt() -> None:
    for task in InstructionsSuite().tasks(0):
        given = task.data["instructions"]
        assert 1 <= len(given) <= 2
        assert given[0]["kind"] == task.family
        if len(given) == 2:
            assert compatible(given[0]["kind"], given[1]["kind"])
        for instruction in given:
            assert KINDS[instruction["kind"]].wording(instruction["parameters"]) in task.data["prompt"]


def test_conflicting_kinds_never_meet() -> None:
    assert not compatible("lowercase", "uppercase")
    assert not compatible("bullets", "paragraphs")
    assert not compatible("title", "title")
    assert compatible("keyword", "no_commas")


def test_choosing_kinds_keeps_their_tasks_unchanged() -> None:
    everything = {t.id: t for t in InstructionsSuite().tasks(3)}
    chosen = InstructionsSuite(kinds=["lowercase", "title"]).tasks(3)
    assert {t.family for t in chosen} == {"lowercase", "title"}
    assert all(everything[t.id] == t for t in chosen)
    with pytest.raises(ValueError, match="capitals"):
        InstructionsSuite(kinds=["lowercase", "capitals"])


def test_summary_scores_tasks_and_instructions() -> None:
    from openglm.evals.base import Outcome

    outcomes = [
        Outcome("a", "lowercase", "heldout", True, 1.0, metrics={"instructions": 2.0, "followed": 2.0}),
        Outcome(
            "b", "title", "heldout", False, 0.5, tools=["drawing_tool"], metrics={"instructions": 2.0, "followed": 1.0}
        ),
        Outcome("c", "title", "heldout", False, 0.0, error="refused", metrics={"instructions": 1.0, "followed": 0.0}),
    ]
    summary = InstructionsSuite().summarize(outcomes)
    assert summary["score"] == pytest.approx(0.5)
    assert summary["metrics"]["all followed (tasks)"] == pytest.approx(1 / 3)
    assert summary["metrics"]["followed (instructions)"] == pytest.approx(3 / 5)
    assert summary["metrics"]["no tool called"] == pytest.approx(2 / 3)
    assert summary["families"] == {"lowercase": 1.0, "title": 0.25}
