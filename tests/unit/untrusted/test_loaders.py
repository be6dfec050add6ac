"""Bounded loaders: JSON and YAML nested past the limit are a clear 400 (never a RecursionError), YAML anchors and
aliases (a "billion laughs") are refused before anything is built, and YAML comes back as JSON data."""

from __future__ import annotations

import json

import pytest
import yaml

from openglm.errors import InvalidFieldError
from openglm.untrusted.loaders import MAX_DEPTH, load_json, load_yaml, nesting_depth


def test_depth_is_measured_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep) == 100_000
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3 and nesting_depth("x") == 0


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 100_000])
def test_json_nested_too_deeply_is_refused(levels: int) -> None:
    with pytest.raises(InvalidFieldError, match=f"nested more than {MAX_DEPTH} levels"):
        load_json("[" * levels + "]" * levels, what="the line")


def test_json_within_the_limit_loads_and_syntax_errors_stay_syntax_errors() -> None:
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, what="x") is not None
    with pytest.raises(json.JSONDecodeError):
        load_json("{nope", what="x")


def test_yaml_aliases_are_refused() -> None:
    bomb = 'a: &a ["lol", "lol"]\nb: &b [*a, *a]\nc: [*b, *b]\n'
    with pytest.raises(InvalidFieldError, match="anchors or aliases"):
        load_yaml(bomb, what="the document")


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 20_000])
def test_yaml_nested_too_deeply_is_refused(levels: int) -> None:
    with pytest.raises((InvalidFieldError, yaml.YAMLError), match=r"nested more than|maximum nesting depth"):
        load_yaml("[" * levels + "]" * levels, what="the document")  # libyaml itself stops at 1000


def test_yaml_becomes_json_data() -> None:
    assert load_yaml("when: 2024-05-01\nn: 3\nlist: [a, b]\n", what="x") == {
        "when": "2024-05-01",
        "n": 3,
        "list": ["a", "b"],
    }
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: [", what="x")
    with pytest.raises(InvalidFieldError, match="mapping keys"):
        load_yaml("2024-05-01: a date as a key\n", what="x")
