"""The unmodified zhipuai SDK against /api/paas/v4."""

from __future__ import annotations

import json
import time

import pytest
from zhipuai import ZhipuAI
from zhipuai.core._errors import APIRequestFailedError

from .conftest import MODEL

ASK = [{"role": "user", "content": "Tell me about Beijing."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 16}},
            "required": ["city"],
        },
    },
}


def test_chat(zhipu: ZhipuAI) -> None:
    response = zhipu.chat.completions.create(model=MODEL, messages=ASK, max_tokens=16, request_id=time.time())
    choice = response.choices[0]
    assert choice.message.content and choice.finish_reason in {"stop", "length"}
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.request_id


def test_do_sample_false_is_greedy_and_stream_agrees(zhipu: ZhipuAI) -> None:
    whole = zhipu.chat.completions.create(model=MODEL, messages=ASK, max_tokens=24, do_sample=False)
    chunks = list(zhipu.chat.completions.create(model=MODEL, messages=ASK, max_tokens=24, do_sample=False, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == whole.choices[0].finish_reason
    assert last.usage is not None and last.usage.completion_tokens == whole.usage.completion_tokens


def test_tools_with_zhipu_sdk(zhipu: ZhipuAI) -> None:
    response = zhipu.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Beijing?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
        do_sample=False,  # sampled, the small model sometimes pads the forced call with spaces up to max_tokens
    )
    (call,) = response.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    assert response.choices[0].finish_reason == "tool_calls"


def test_errors_raise_sdk_exceptions(zhipu: ZhipuAI) -> None:
    with pytest.raises(APIRequestFailedError) as info:
        zhipu.chat.completions.create(model="glm-nonexistent", messages=ASK)
    assert "1211" in str(info.value)
