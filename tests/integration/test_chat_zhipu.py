"""The unmodified zhipuai SDK against /api/paas/v4."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from zhipuai import ZhipuAI
from zhipuai.core._errors import APIRequestFailedError

from .conftest import MODEL
from .server import RunningServer

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


def test_charglm_role_play_with_meta_is_answered_and_billed_as_charglm_3(zhipu: ZhipuAI, server: RunningServer) -> None:
    meta = {
        "user_info": "我是陆星辰，一位导演。",
        "bot_info": "苏梦远，一位当红歌手，待人谦逊。",
        "bot_name": "苏梦远",
        "user_name": "陆星辰",
    }
    before = charglm_row(server)
    reply = zhipu.chat.completions.create(
        model="charglm-3", meta=meta, messages=[{"role": "user", "content": "你好，最近在忙什么？"}], max_tokens=24
    )
    assert reply.choices[0].message.content and reply.model == "charglm-3"
    row = charglm_row(server)
    assert row["requests"] == before["requests"] + 1
    tokens = row["total_tokens"] - before["total_tokens"]
    assert tokens == reply.usage.total_tokens
    # Its own price (Zhipu's list price for charglm-3: 0.015 CNY per 1K tokens), not the default model's.
    assert Decimal(row["cost"]) - Decimal(before["cost"]) == Decimal("0.015") * tokens / 1000


def charglm_row(server: RunningServer) -> dict[str, Any]:
    usage = httpx.get(f"{server.url}/api/paas/v4/account/usage", params={"by": "model"}).json()
    empty = {"requests": 0, "total_tokens": 0, "cost": "0"}
    return next((r for r in usage["data"] if r["group"] == "charglm-3"), empty)


def test_the_tokenizer_counts_what_the_chat_call_reads(zhipu: ZhipuAI, server: RunningServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about Beijing."}]
    chat = zhipu.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=1)
    body = {"model": MODEL, "messages": messages, "tools": [WEATHER], "request_id": "count-1"}
    counted = httpx.post(f"{server.url}/api/paas/v4/tokenizer", json=body).json()
    assert counted["usage"] == {"prompt_tokens": chat.usage.prompt_tokens}
    assert counted["request_id"] == "count-1" and counted["id"] and counted["created"] > 0
    unknown = httpx.post(f"{server.url}/api/paas/v4/tokenizer", json={**body, "model": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "1211"
