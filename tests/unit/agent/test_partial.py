"""Streaming a tool call's code out of its half-written JSON arguments, replayed character by character."""

from __future__ import annotations

import json

import pytest

from openglm.agent.partial import partial_string

CODES = [
    "print(1)",
    'print("quoted \\\\ backslash")\nfor i in range(3):\n\tprint(i)',
    "s = '中文 and emoji 🎉'\nprint(s)",
    "x = '\\u00e9'",
]


@pytest.mark.parametrize("code", CODES)
def test_prefixes_only_grow_and_end_exact(code: str) -> None:
    raw = json.dumps({"code": code}, ensure_ascii=True)
    seen = ""
    for end in range(len(raw) + 1):
        decoded = partial_string(raw[:end], "code")
        assert decoded.startswith(seen), (raw[:end], decoded, seen)  # never takes back what it gave
        seen = decoded
    assert seen == code


def test_no_value_yet_and_other_keys() -> None:
    assert partial_string("", "code") == ""
    assert partial_string('{"co', "code") == ""
    assert partial_string('{"language": "py", "code": "ab', "code") == "ab"
    assert partial_string('{"code": "a\\', "code") == "a"  # an escape still coming is held back
    assert partial_string('{"code": "a\\u00', "code") == "a"


def test_tool_state_is_per_account() -> None:
    """Two accounts that pick the same conversation id get different kernels, sessions and prompts."""
    from openglm.agent.loop import AgentLoop
    from openglm.catalog import AgentSpec
    from openglm.protocol.chat import ChatCompletionRequest

    class Tool:
        type, function_name, input_argument, streams_input = "code_interpreter", "python", "code", True

    class Models:  # the catalog model has no agent adapter
        def agent_adapter(self, model: str) -> None:
            return None

    class Chat:
        models = Models()

    loop = AgentLoop(chat=Chat(), tools={"code_interpreter": Tool()})  # type: ignore[arg-type,dict-item]
    request = ChatCompletionRequest.model_validate(
        {
            "model": "agent",
            "messages": [{"role": "user", "content": "hi"}],
            "conversation_id": "1",
            "tools": [{"type": "code_interpreter"}],
        }
    )
    spec = AgentSpec(id="agent", model="m")
    first = loop.prepare(spec, request, "acct_a").builtins["python"][1].conversation
    second = loop.prepare(spec, request, "acct_b").builtins["python"][1].conversation
    assert first != second and first.endswith(":1") and second.endswith(":1")
