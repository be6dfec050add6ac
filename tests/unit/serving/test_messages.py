from __future__ import annotations

import pytest

from openglm.errors import InvalidFieldError, InvalidRequestError
from openglm.protocol.chat import ChatMessage
from openglm.serving.messages import adapt_for_template, normalize_messages
from openglm.serving.templates.chatml import ChatMLTemplate
from openglm.serving.toolcalls.base import get_parser

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def msgs(*items: dict[str, object]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(item) for item in items]


def test_empty_messages_rejected() -> None:
    with pytest.raises(InvalidFieldError, match="non-empty"):
        normalize_messages([])


def test_tool_message_without_call_rejected() -> None:
    with pytest.raises(InvalidFieldError, match=r"messages\[1\].*must follow"):
        normalize_messages(msgs({"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}))


def test_tool_message_with_unknown_call_id_rejected() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    with pytest.raises(InvalidFieldError, match="does not match"):
        normalize_messages(
            msgs(
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c2", "content": "42"},
            )
        )


def test_image_parts_rejected_for_text_models() -> None:
    with pytest.raises(InvalidRequestError, match="cannot see images") as refused:
        normalize_messages(msgs({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}))
    assert refused.value.code == "1210"
    seen = normalize_messages(
        msgs(
            {
                "role": "user",
                "content": [{"type": "text", "text": "Look: "}, {"type": "image_url", "image_url": {"url": "x"}}],
            }
        ),
        sees=True,
    )
    assert seen[0]["content"] == "Look: [image]"  # a model that sees: the text bounds the prompt


def test_roles_are_normalized_and_text_parts_joined() -> None:
    out = normalize_messages(
        msgs(
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        )
    )
    assert out == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"}]


def test_dict_arguments_are_serialized() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    out = normalize_messages(msgs({"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call]}))
    assert out[1]["tool_calls"] == [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]


def test_templates_without_tools_get_calls_and_results_as_text() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = normalize_messages(
        msgs(
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        )
    )
    out = adapt_for_template(messages, ChatMLTemplate(), get_parser("hermes")(TOOLS), TOOLS)
    assert out[0]["role"] == "system" and "<tools>" in out[0]["content"]
    assert out[2] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    }
    assert out[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}
