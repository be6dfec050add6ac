from __future__ import annotations

import json

import pytest

from openglm.serving.toolcalls.base import get_parser

from .replay import final_parse, replay

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
MODES = ["tokens", "chars", "words", "whole"]

GLM4_CASES = [
    # (model text, expected content, expected [(name, arguments)])
    ("\nHello, world!", "Hello, world!", []),
    ("\nIt is get_weather time.", "It is get_weather time.", []),
    ('get_weather\n{"city": "Paris"}', "", [("get_weather", '{"city": "Paris"}')]),
    (
        'get_weather\n{"city": "Paris", "days": {"n": 2}}  ',
        "",
        [("get_weather", '{"city": "Paris", "days": {"n": 2}}')],
    ),
    ('Let me check.\nget_weather\n{"city": "Rome"}', "Let me check.", [("get_weather", '{"city": "Rome"}')]),
    (
        'get_weather\n{"city": "Oslo"}<|assistant|>get_time\n{"tz": "CET"}',
        "",
        [("get_weather", '{"city": "Oslo"}'), ("get_time", '{"tz": "CET"}')],
    ),
    ("Hello\nthere\nget_weather is a tool", "Hello\nthere\nget_weather is a tool", []),
    ("get_weather\nnot json at all", "", [("get_weather", "not json at all")]),
    ("get_wea", "get_wea", []),
    # Review findings: blank line before "{", text after the arguments, two prose-embedded calls.
    ('Hello\nget_weather\n\n{"a": 1}', "Hello", [("get_weather", '{"a": 1}')]),
    ('\nSure\nget_weather\n{"a": 1}\nDone.', "Sure\nDone.", [("get_weather", '{"a": 1}')]),
    ('x\nget_weather\n{"a": 1}\nget_time\n{"b": 2}', "x", [("get_weather", '{"a": 1}'), ("get_time", '{"b": 2}')]),
    ("\n", "", []),
]

HERMES_CASES = [
    ("Just text.", "Just text.", []),
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        [("get_weather", '{"city": "Paris"}')],
    ),
    (
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "A"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
        "Checking.",
        [("get_weather", '{"city": "A"}'), ("get_time", "{}")],
    ),
    ('<tool_call>{"arguments": {"x": 1}, "name": "get_time"}</tool_call>', "", [("get_time", '{"x": 1}')]),
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        [("get_weather", '{"city": "Paris"}')],
    ),
    ("a < b and <tool", "a < b and <tool", []),
    # Review findings: a missing close tag, keys after the arguments, a nested "name", bad escapes, string arguments.
    (
        '<tool_call>{"name": "get_weather", "arguments": {"a": 1}}\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
        "",
        [("get_weather", '{"a": 1}'), ("get_time", "{}")],
    ),
    (
        '<tool_call>{"name": "get_weather", "arguments": {"a": 1}, "x": 2}</tool_call>',
        "",
        [("get_weather", '{"a": 1}')],
    ),
    (
        '<tool_call>{"arguments": {"name": "x", "v": [1, "}"]}, "name": "get_time"}</tool_call>',
        "",
        [("get_time", '{"name": "x", "v": [1, "}"]}')],
    ),
    (
        '<tool_call>{"name": "get\\q", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get\\q", "arguments": {}}</tool_call>',
        [],
    ),
    ('<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": 1}"}</tool_call>', "", [("get_time", '{"tz": 1}')]),
    ("<tool_call>oops</tool_call>", "<tool_call>oops</tool_call>", []),
]

JSON_CASES = [
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [("get_weather", '{"city": "Paris"}')]),
    (
        '[{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_time", "arguments": {}}]',
        "",
        [("get_weather", '{"city": "A"}'), ("get_time", "{}")],
    ),
    ('{"answer": 42}', '{"answer": 42}', []),
    ('{"name": "get_time", "arguments": {"tz": "UTC"}} trailing', "", [("get_time", '{"tz": "UTC"}')]),
    ("plain words", "plain words", []),
]


def _check(parser_name: str, text: str, content: str, calls: list[tuple[str, str]], mode: str) -> None:
    parser = get_parser(parser_name)(TOOLS)
    streamed = replay(parser, text, mode)
    assert streamed.content == content
    assert [(c["name"], c["arguments"]) for c in streamed.calls] == calls
    # Streaming and non-streaming agree.
    whole = final_parse(get_parser(parser_name)(TOOLS), text)
    assert (whole.content, [(c["name"], c["arguments"]) for c in whole.calls]) == (content, calls)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("text", "content", "calls"), GLM4_CASES)
def test_glm4_parser_replayed(text: str, content: str, calls: list[tuple[str, str]], mode: str) -> None:
    _check("glm4", text, content, calls, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("text", "content", "calls"), HERMES_CASES)
def test_hermes_parser_replayed(text: str, content: str, calls: list[tuple[str, str]], mode: str) -> None:
    _check("hermes", text, content, calls, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("text", "content", "calls"), JSON_CASES)
def test_json_parser_replayed(text: str, content: str, calls: list[tuple[str, str]], mode: str) -> None:
    _check("json", text, content, calls, mode)


def test_glm4_streams_arguments_in_fragments() -> None:
    parser = get_parser("glm4")(TOOLS)
    from openglm.serving.toolcalls.base import ToolCallDelta, ToolCallStream

    stream = ToolCallStream(parser)
    deltas = [d for piece in ["get_weather", "\n", '{"city"', ': "Par', 'is"}'] for d in stream.feed(piece)]
    deltas += stream.finish()
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert calls[0].name == "get_weather" and calls[0].id
    assert len(calls) >= 3, "arguments arrive as they are generated, not in one piece at the end"
    assert json.loads("".join(d.arguments for d in calls)) == {"city": "Paris"}


def test_unknown_parser_lists_known_names() -> None:
    with pytest.raises(KeyError, match="glm4, hermes, hermes-compact, json"):
        get_parser("nope")


def test_hermes_compact_lists_each_tool_on_one_line_and_parses_as_hermes() -> None:
    from openglm.serving.toolcalls.hermes_compact import HermesCompactParser

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather\n  for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "left out"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        "days": {"type": "array", "items": {"type": "integer"}},
                    },
                    "required": ["city"],
                },
            },
        },
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
    ]
    parser = get_parser("hermes-compact")(tools)
    assert isinstance(parser, HermesCompactParser)
    prompt = parser.system_prompt()
    assert prompt.endswith(
        "Tools:\n"
        '- get_weather(city: string, unit?: "celsius"|"fahrenheit", days?: list[integer]): Current weather for a city.\n'
        "- ping()"
    )
    assert "left out" not in prompt
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert parser.parse(text, final=True).calls == get_parser("hermes")(tools).parse(text, final=True).calls


@pytest.mark.parametrize(
    "parameters",
    [{"properties": [], "required": 5}, "x", {"properties": {"a": 1}, "required": [{}]}, {"type": "object"}],
)
def test_hermes_compact_lists_malformed_schemas_without_failing(parameters: object) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    assert get_parser("hermes-compact")(tools).system_prompt().splitlines()[-1].startswith("- f(")
