"""The function-calling suite's checker (structure, not strings) and its families' split."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from openglm.evals.function_tasks import (
    PHRASEBOOKS,
    WORDING_SPLITS,
    Call,
    check_calls,
    function_task,
    parse_date,
    parse_time,
)
from openglm.evals.functions import BY_NAME, FUNCTIONS
from openglm.evals.suites.function_calling import CATEGORIES, FunctionCallingSuite


def made(name: str, **arguments: Any) -> tuple[str, str]:
    return name, json.dumps(arguments)


FLIGHT = Call("search_flights", {"origin": "Bergen", "destination": "Tbilisi", "date": "2027-04-14"})
TABLE = Call("book_table", {"restaurant": "Saffron Yard", "time": "20:00", "people": 7})
MONEY = Call("convert_currency", {"amount": 1250, "from_currency": "EUR", "to_currency": "CAD"})
WEATHER = Call("get_weather", {"city": "Lisbon"})


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ([MONEY], [made("convert_currency", amount=1250.0, from_currency="EUR", to_currency="CAD")]),
        ([MONEY], [made("convert_currency", to_currency="CAD", amount=1250, from_currency="EUR")]),
        ([FLIGHT], [made("search_flights", origin=" bergen", destination="TBILISI", date="April 14, 2027")]),
        ([FLIGHT], [made("search_flights", origin="Bergen", destination="Tbilisi", date="14th April 2027")]),
        ([TABLE], [made("book_table", restaurant="saffron  yard", time="8:00 p.m.", people=7)]),
        ([TABLE], [made("book_table", restaurant="Saffron Yard", time="20:00:00", people=7.0)]),
        ([WEATHER], [made("get_weather", city="Lisbon", unit="fahrenheit")]),  # an optional argument left open
        ([FLIGHT, TABLE], [made("book_table", **TABLE.arguments), made("search_flights", **FLIGHT.arguments)]),
        ([], []),
    ],
)
def test_calls_that_mean_the_same_pass(expected: list[Call], actual: list[tuple[str, str]]) -> None:
    assert check_calls(expected, actual) is None


@pytest.mark.parametrize(
    ("expected", "actual", "why"),
    [
        ([WEATHER], [made("get_local_time", city="Lisbon")], "no call of get_weather"),
        ([WEATHER], [("get_weather", '{"city": "Lisbon"')], "not JSON"),
        ([WEATHER], [("get_weather", '["Lisbon"]')], "not a JSON object"),
        ([WEATHER], [made("get_weather", city="Lisbon", country="PT")], "unknown argument 'country'"),
        ([MONEY], [made("convert_currency", amount=1250, from_currency="EUR")], "missing argument 'to_currency'"),
        (
            [MONEY],
            [made("convert_currency", amount="1250", from_currency="EUR", to_currency="CAD")],
            "expected a number",
        ),
        (
            [MONEY],
            [made("convert_currency", amount=1205, from_currency="EUR", to_currency="CAD")],
            "expected 1250, got 1205",
        ),
        ([TABLE], [made("book_table", restaurant="Saffron Yard", time="20:00", people=7.5)], "expected an integer"),
        ([TABLE], [made("book_table", restaurant="Saffron Yard", time="8:00 am", people=7)], "expected the time 20:00"),
        ([FLIGHT], [made("search_flights", origin="Bergen", destination="Tbilisi", date="04/14/2027")], "the date"),
        ([FLIGHT], [made("search_flights", origin="Tbilisi", destination="Bergen", date="2027-04-14")], "'origin'"),
        (
            [Call("get_weather", {"city": "Lisbon", "unit": "celsius"})],
            [made("get_weather", city="Lisbon", unit="Celsius")],
            "not one of",
        ),
        ([WEATHER], [made("get_weather", city="Lisbon", unit="kelvin")], "'kelvin' is not one of"),
        ([], [made("get_weather", city="Lisbon")], "expected 0 call(s) (none), got 1 (get_weather)"),
        ([FLIGHT, TABLE], [made("search_flights", **FLIGHT.arguments)], "expected 2 call(s)"),
        ([FLIGHT, TABLE], [made("search_flights", **FLIGHT.arguments)] * 2, "no call of book_table"),
    ],
)
def test_calls_that_differ_fail_with_the_first_mismatch(
    expected: list[Call], actual: list[tuple[str, str]], why: str
) -> None:
    problem = check_calls(expected, actual)
    assert problem is not None and why in problem, problem


def test_enum_values_are_exact_and_dates_are_never_guessed() -> None:
    schema = BY_NAME["log_expense"].parameters
    expected = [Call("log_expense", {"amount": 12.5, "category": "food", "date": "2027-03-04"})]
    assert check_calls(expected, [made("log_expense", amount=12.5, category="food", date="March 4, 2027")]) is None
    wrong = check_calls(expected, [made("log_expense", amount=12.5, category="FOOD", date="2027-03-04")])
    assert wrong is not None and "'category'" in wrong
    assert schema["properties"]["category"]["enum"][0] == "food"
    assert parse_date("03/04/2027") is None  # March 4 or 3 April: not a date to compare
    assert parse_time("7pm") == parse_time("19:00") and parse_time("noon-ish") is None


def test_every_task_passes_when_called_as_expected_and_the_request_states_each_value() -> None:
    """The suite's own answer key satisfies its checker and its schemas, and what a call needs is in the request."""
    for task in FunctionCallingSuite().tasks(3):
        expected = [Call(c["name"], c["arguments"]) for c in task.data["expected"]]
        offered = {t["function"]["name"] for t in task.data["tools"]}
        assert {call.name for call in expected} <= offered, task.id
        assert check_calls(expected, [made(c.name, **c.arguments) for c in expected]) is None, task.id
        for call in expected:
            for value in call.arguments.values():
                if isinstance(value, str) and not value[:1].isdigit():  # dates and times are shown reworded
                    assert value.lower() in task.data["request"].lower(), (task.id, value)


def test_held_out_families_never_share_wordings_or_called_functions_with_training() -> None:
    tasks = FunctionCallingSuite().tasks(0) + FunctionCallingSuite().tasks(1)
    families = {task.family for task in tasks}
    assert families == {f"{c}-{w}" for c in CATEGORIES for w in WORDING_SPLITS}
    assert {task.split for task in tasks} == {"train", "heldout"}
    for task in tasks:
        assert task.split == WORDING_SPLITS[task.data["wording"]]
        called = {BY_NAME[call["name"]].split for call in task.data["expected"]}
        assert called <= {task.split}, task.id  # no held-out function is called in a training family, nor v.v.
        if task.split == "train":  # a training family does not even show a held-out function
            assert {BY_NAME[t["function"]["name"]].split for t in task.data["tools"]} == {"train"}, task.id
    # The templates: a function is only ever asked for in the wordings of its own split.
    for function in FUNCTIONS:
        assert {WORDING_SPLITS[w] for w in PHRASEBOOKS[function.name].wordings} == {function.split}, function.name
    train_requests = {t.data["request"] for t in tasks if t.split == "train"}
    assert not train_requests & {t.data["request"] for t in tasks if t.split == "heldout"}


def test_tasks_are_deterministic_from_the_seed_and_varied() -> None:
    suite = FunctionCallingSuite()
    first, again, other = suite.tasks(0), suite.tasks(0), suite.tasks(1)
    assert [t.data for t in first] == [t.data for t in again]
    assert [t.data for t in first] != [t.data for t in other]
    simple = [t.data["request"] for t in first if t.family == "simple-imperative"]
    assert len(set(simple)) == len(simple)
    assert function_task(random.Random(5), BY_NAME["get_weather"], "question") == function_task(
        random.Random(5), BY_NAME["get_weather"], "question"
    )
    with pytest.raises(KeyError):
        function_task(random.Random(5), BY_NAME["search_flights"], "imperative")  # a held-out function
