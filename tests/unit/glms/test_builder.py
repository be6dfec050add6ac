"""The builder's schema, prompt and merge, without a model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openglm.errors import EngineError, InvalidFieldError
from openglm.glms.builder import (
    MAX_INSTRUCTIONS,
    MAX_PROMPTS,
    MAX_TOKENS,
    NEW_AGENT_NAME,
    BuilderOutput,
    BuilderTurn,
    Draft,
    builder_tools,
    chat_request,
    merge,
    output_schema,
    parse_output,
)
from openglm.protocol.glms import AgentConfig, AgentHttpApi
from openglm.serving.grammar import json_schema_grammar

API = AgentHttpApi(openapi='{"openapi": "3.0.0", "paths": {}}', base_url="https://api.example.com")
DRAFT = Draft(
    name="Gardener",
    description="Plans gardens.",
    avatar="https://example.com/a.png",
    visibility="listed",
    config=AgentConfig(
        instructions="Help with gardens.",
        model="my-model",
        tools=["retrieval"],
        knowledge_ids=["kb1"],
        http_apis=[API],
        starter_prompts=["What grows in shade?"],
    ),
)


def output(**fields: Any) -> BuilderOutput:
    base: dict[str, Any] = {
        "reply": "Done.",
        "name": "Seed counter",
        "description": "Counts seeds.",
        "instructions": "Count seeds for the user.",
        "tools": ["code_interpreter"],
        "starter_prompts": ["How many carrot seeds for 2 m?"],
    }
    return BuilderOutput.model_validate(base | fields)


def bounded(schema: Any) -> bool:
    """Every string has a maxLength and every array a maxItems, all the way down."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and "enum" not in schema and "maxLength" not in schema:
            return False
        if schema.get("type") == "array" and "maxItems" not in schema:
            return False
        return all(bounded(v) for v in schema.values())
    if isinstance(schema, list):
        return all(bounded(v) for v in schema)
    return True


def max_chars(schema: dict[str, Any]) -> int:
    total = 0
    for value in schema["properties"].values():
        if value["type"] == "string":
            total += value["maxLength"]
        else:
            items = value["items"]
            each = items.get("maxLength") or max((len(e) for e in items.get("enum", [])), default=0)
            total += value["maxItems"] * (each + 4)
    return total


@pytest.mark.parametrize("tools", [["code_interpreter", "web_browser", "drawing_tool", "retrieval"], []])
def test_the_schema_is_bounded_and_compiles_to_a_grammar(tools: list[str]) -> None:
    schema = output_schema(tools)
    assert bounded(schema)
    assert set(schema["required"]) == set(BuilderOutput.model_fields) and schema["additionalProperties"] is False
    assert schema["properties"]["tools"]["maxItems"] == len(tools)
    if tools:
        assert schema["properties"]["tools"]["items"]["enum"] == tools
    assert max_chars(schema) + 100 <= MAX_TOKENS  # the longest answer fits the token budget
    grammar = json_schema_grammar(schema)
    assert "root ::=" in grammar


def test_builder_tools_are_the_offered_built_ins_and_retrieval_needs_knowledge() -> None:
    offered = ["retrieval", "code_interpreter", "something_else"]
    assert builder_tools(offered, None) == ["code_interpreter"]
    assert builder_tools(offered, AgentConfig(model="m")) == ["code_interpreter"]
    assert builder_tools(offered, DRAFT.config) == ["code_interpreter", "retrieval"]
    assert builder_tools([], DRAFT.config) == []


def test_the_prompt_holds_the_task_the_draft_and_the_conversation() -> None:
    turns = [
        BuilderTurn("user", "A gardening helper"),
        BuilderTurn("assistant", "Sure."),
        BuilderTurn("user", "Add seed counts"),
    ]
    request = chat_request("my-model", turns, DRAFT, ["code_interpreter"])
    system, *rest = request.messages
    assert system.role == "system" and isinstance(system.content, str)
    assert "GLM builder" in system.content and "code_interpreter:" in system.content
    shown = json.loads(system.content.split("Current draft:\n", 1)[1])
    assert shown == {
        "name": "Gardener",
        "description": "Plans gardens.",
        "instructions": "Help with gardens.",
        "tools": ["retrieval"],
        "starter_prompts": ["What grows in shade?"],
    }
    assert [(m.role, m.content) for m in rest] == [(t.role, t.content) for t in turns]
    assert request.model == "my-model" and request.max_tokens == MAX_TOKENS
    assert request.response_format is not None and request.response_format.type == "json_schema"
    assert request.response_format.json_schema is not None
    assert request.response_format.json_schema.schema_ == output_schema(["code_interpreter"])
    first = chat_request("my-model", turns[:1], None, [])
    assert isinstance(first.messages[0].content, str) and "no draft yet" in first.messages[0].content


@pytest.mark.parametrize(
    "turns",
    [
        [],
        [BuilderTurn("system", "x")],
        [BuilderTurn("user", "hi"), BuilderTurn("assistant", "hello")],
        [BuilderTurn("user", "  ")],
    ],
    ids=["empty", "bad-role", "ends-with-assistant", "blank"],
)
def test_bad_conversations_are_refused(turns: list[BuilderTurn]) -> None:
    with pytest.raises(InvalidFieldError):
        chat_request("m", turns, None, [])


def test_a_first_answer_makes_a_new_draft_on_the_builder_model() -> None:
    reply, draft = merge(None, output(), model="my-model", tools=["code_interpreter"])
    assert reply == "Done."
    assert draft.name == "Seed counter" and draft.description == "Counts seeds."
    assert draft.avatar == "" and draft.visibility == "private"
    assert draft.config == AgentConfig(
        instructions="Count seeds for the user.",
        model="my-model",
        tools=["code_interpreter"],
        starter_prompts=["How many carrot seeds for 2 m?"],
    )


def test_a_revision_keeps_what_the_model_cannot_set() -> None:
    _, draft = merge(DRAFT, output(), model="other-model", tools=["code_interpreter"])
    assert draft.avatar == DRAFT.avatar and draft.visibility == "listed"
    assert draft.config.model == "my-model"  # the draft's model, not the builder's
    assert draft.config.knowledge_ids == ["kb1"] and draft.config.http_apis == [API]
    assert draft.config.tools == ["code_interpreter"] and draft.config.instructions == "Count seeds for the user."


def test_what_the_model_leaves_empty_keeps_the_drafts_value() -> None:
    empty = output(reply=" ", name=" ", description="", instructions="", tools=[], starter_prompts=[" "])
    reply, draft = merge(DRAFT, empty, model="m", tools=["code_interpreter"])
    assert reply and draft == DRAFT
    _, new = merge(None, empty, model="m", tools=[])
    assert new.name == NEW_AGENT_NAME and new.config == AgentConfig(model="m")


def test_tools_it_may_not_enable_are_dropped_and_the_result_validates() -> None:
    wild = output(
        tools=["retrieval", "drawing_tool", "code_interpreter", "code_interpreter"],
        starter_prompts=["a", " b ", ""] + ["x"] * 10,
        instructions="y" * (MAX_INSTRUCTIONS + 50),
    )
    _, draft = merge(None, wild, model="m", tools=["code_interpreter"])
    assert draft.config.tools == ["code_interpreter"]
    assert draft.config.starter_prompts == ["a", "b", "x", "x"][:MAX_PROMPTS]
    assert len(draft.config.instructions) == MAX_INSTRUCTIONS
    AgentConfig.model_validate(draft.config.model_dump())


@pytest.mark.parametrize(
    ("content", "finish"),
    [('{"reply": "cut', "length"), ("not json", "stop"), ('{"reply": "x"}', "stop"), (None, "stop")],
    ids=["cut-off", "not-json", "missing-fields", "no-content"],
)
def test_an_answer_that_is_not_a_draft_is_an_engine_error(content: str | None, finish: str) -> None:
    with pytest.raises(EngineError):
        parse_output(content, finish)


def test_a_complete_answer_is_parsed() -> None:
    text = output().model_dump_json()
    assert parse_output(text, "stop") == output()
