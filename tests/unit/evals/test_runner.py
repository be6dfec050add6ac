"""Choosing an eval run's tasks: split, families and tasks per family; an unknown family is refused by name."""

from __future__ import annotations

import argparse

import pytest

from openglm.evals.cli import _run
from openglm.evals.runner import choose_tasks
from openglm.evals.suites.alltools import AllToolsSuite


def test_tasks_are_chosen_by_family_split_and_count_in_the_suites_order() -> None:
    tasks = AllToolsSuite().tasks(0)
    chosen = choose_tasks(tasks, split=None, per_family=2, families=["fn-weather", "weekday"])
    assert sorted(t.family for t in chosen) == ["fn-weather", "fn-weather", "weekday", "weekday"]
    assert chosen == [t for t in tasks if t in chosen]  # the suite's order kept
    assert choose_tasks(tasks, split="train", per_family=None, families=["weekday"]) == []  # weekday is held out
    assert len(choose_tasks(tasks, split=None, per_family=None)) == len(tasks)


def test_an_unknown_family_is_refused_with_the_known_ones_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(suite=["alltools"], model=["glm-4-alltools"], family=["fn-weather,no-such"], seed=0)
    assert _run(args) == 2
    error = capsys.readouterr().err
    assert "--family no-such: not a family of these suites" in error and "fn-weather" in error
    args.family = [" , "]  # names nothing: refused rather than a run of no task
    assert _run(args) == 2
    assert "--family: no family named" in capsys.readouterr().err
