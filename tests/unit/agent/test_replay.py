"""Id-less tool rounds, as glm-4-alltools clients send them back, become ordinary tool calls."""

from __future__ import annotations

import json

from openglm.agent.replay import with_replayed_calls
from openglm.protocol.chat import ChatMessage, ToolCall, ToolCallFunction


def message(role: str, content: str | None = None, **fields: object) -> ChatMessage:
    return ChatMessage.model_validate({"role": role, "content": content, **fields})


def test_a_function_literal_becomes_a_call_and_its_result_answers_it() -> None:
    history = [
        message("user", "Weather?"),
        message("assistant", "arguments='{\"city\": \"Beijing\"}', name='get_weather'"),
        message("tool", "sunny"),
    ]
    out = with_replayed_calls(history, native_code=False)
    [call] = out[1].tool_calls or []
    assert (call.function.name, call.function.arguments, out[1].content) == ("get_weather", '{"city": "Beijing"}', None)
    assert out[2].tool_call_id == call.id and out[2].content == "sunny"


def test_code_the_client_ran_becomes_a_code_interpreter_call() -> None:
    history = [message("user", "Sum?"), message("assistant", "print(1 + 1)"), message("tool", "2", tool_call_id="x")]
    json_form = with_replayed_calls(history, native_code=False)
    [call] = json_form[1].tool_calls or []
    assert call.function.name == "python" and json.loads(call.function.arguments) == {"code": "print(1 + 1)"}
    assert json_form[2].tool_call_id == call.id  # the client's own id named no call we know
    [native] = with_replayed_calls(history, native_code=True)[1].tool_calls or []
    assert native.function.arguments == "print(1 + 1)"  # GLM-4 writes python's body raw


def test_ordinary_histories_are_left_alone() -> None:
    call = ToolCall(id="call_1", function=ToolCallFunction(name="f", arguments="{}"))
    history = [
        message("user", "Hi"),
        message("assistant", "Hello, arguments='{}', name='f' is just text here"),
        message("user", "Call f"),
        ChatMessage(role="assistant", tool_calls=[call]),
        message("tool", "done", tool_call_id="call_1"),
        message("assistant", "It is done."),
    ]
    assert with_replayed_calls(history, native_code=False) == history
