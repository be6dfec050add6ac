"""Training-file validation: each line shape (chat, tool calls, DPO) accepted, each problem reported by line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openglm.errors import InvalidFieldError
from openglm.tuning.validation import MAX_ERRORS, check_training_file

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
TOOLS = {
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "weight": 1},
    ],
}
DPO = {
    "input": {"messages": [{"role": "user", "content": "2+2?"}]},
    "preferred_output": [{"role": "assistant", "content": "4"}],
    "non_preferred_output": [{"role": "assistant", "content": "5"}],
}


def data(*lines: Any) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def problems(payload: bytes, method: str = "supervised") -> str:
    with pytest.raises(InvalidFieldError) as refused:
        check_training_file(payload, method)
    return refused.value.message


def test_valid_lines_of_each_shape_are_counted() -> None:
    summary = check_training_file(data(CHAT, TOOLS, ""), "supervised")
    assert summary["lines"] == 2 and summary["estimated_tokens"] > 0
    assert check_training_file(data(DPO, DPO), "dpo")["lines"] == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("not json", "line 1: not a JSON object"),
        ([1, 2], "line 1: not a JSON object"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0]: role must be one of"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "messages[0]: content is missing"),
        ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "messages[0].content[0]: a content part"),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 1}}]}
                ]
            },
            "arguments must be a JSON text",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}
                ]
            },
            "arguments is not valid JSON",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "g"}}],
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}
                ],
            },
            "calls 'f', which the line's tools do not declare",
        ),
        (
            {
                "messages": [
                    {"role": "tool", "tool_call_id": "x", "content": "r"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "tool_call_id 'x' answers no earlier assistant tool call",
        ),
        ({"messages": [{"role": "tool", "content": "r"}]}, "a tool message needs the 'tool_call_id'"),
        ({"tools": [{"type": "retrieval"}], **CHAT}, "tools[0]: a tool is"),
        ({"messages": [{"role": "user", "content": "q", "weight": 1}]}, "weight is 0 or 1, on assistant messages"),
        (DPO, "a supervised line needs 'messages' (this is a DPO line"),
    ],
)
def test_each_supervised_problem_is_named_with_its_line(line: Any, expected: str) -> None:
    message = problems(data(CHAT, line))
    assert "line 2: " in message and expected.removeprefix("line 1: ") in message, message
    assert "line 1:" not in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (CHAT, "a DPO line needs 'input', 'preferred_output' and 'non_preferred_output' (this is a supervised line"),
        ({**DPO, "preferred_output": []}, "preferred_output is empty"),
        (
            {**DPO, "non_preferred_output": [{"role": "user", "content": "x"}]},
            "non_preferred_output[0]: role must be assistant",
        ),
        ({**DPO, "input": {"messages": []}}, "input.messages is empty"),
        ({**DPO, "input": "hi"}, "input must be an object"),
    ],
)
def test_each_dpo_problem_is_named_with_its_line(line: Any, expected: str) -> None:
    message = problems(data(DPO, line), "dpo")
    assert f"line 2: {expected}" in message, message


def test_at_most_twenty_problems_are_listed_and_the_rest_counted() -> None:
    message = problems(data(*(["{"] * 30)))
    assert message.count("line ") == MAX_ERRORS and "(and 10 more lines with problems)" in message
    assert "line 21:" not in message


def test_an_empty_file_and_bad_utf8_are_refused() -> None:
    assert "no training examples" in problems(b"\n\n")
    assert "line 1: not UTF-8 text" in problems(b"\xff\xfe\n")
