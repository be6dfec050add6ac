"""Every chat path through the routes and the run service, in process, on scripted models: streaming and
non-streaming compared where both exist, one usage record per call under the response's id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .inprocess import InProcess, serving

ANSWER = "Hello there: streamed and collected, the same words."
WEATHER_CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Beijing"}})
CATALOG = f"""
[[models]]
id = "echo"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = "You are Captain Flint"
reply = "Arr, Flint speaks."
[[models.options.script]]
when = ""
reply = {json.dumps(ANSWER)}

[[models.variants]]
id = "echo-roleplay"
prices = {{ input = 2, output = 3 }}

[[models]]
id = "script-function"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "sunny-and-22"
reply = "It is sunny, 22 degrees."
[[models.options.script]]
when = ""
reply = {json.dumps("<tool_call>" + chr(10) + WEATHER_CALL + chr(10) + "</tool_call>")}

[[agents]]
id = "talk-agent"
model = "echo"

[[agents]]
id = "function-agent"
model = "script-function"
"""
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with serving(tmp_path, CATALOG) as running:
        yield running


async def usage_ids(running: InProcess) -> list[str]:
    return [row.id for row in await running.usage()]


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


@pytest.mark.parametrize("prefix", ["/v1", "/api/paas/v4"])
async def test_chat_streamed_and_collected_say_the_same_and_are_billed_once_each(
    platform: InProcess, prefix: str
) -> None:
    body = {"model": "echo", "messages": USER, "temperature": 0}
    collected = (await platform.client.post(f"{prefix}/chat/completions", json=body)).json()
    events = await platform.events(
        f"{prefix}/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert collected["choices"][0]["message"]["content"] == streamed_text(events) == ANSWER
    assert collected["choices"][0]["finish_reason"] == events[-2]["choices"][0]["finish_reason"] == "stop"
    assert collected["usage"] == events[-1]["usage"]
    assert await usage_ids(platform) == [collected["id"], events[0]["id"]]


async def test_function_calls_streamed_and_collected_are_the_same_call(platform: InProcess) -> None:
    body = {"model": "script-function", "messages": USER, "tools": [WEATHER]}
    collected = (await platform.client.post("/v1/chat/completions", json=body)).json()
    events = await platform.events("/v1/chat/completions", {**body, "stream": True})
    call = collected["choices"][0]["message"]["tool_calls"][0]["function"]
    pieces = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert pieces[0]["function"]["name"] == call["name"] == "get_weather"
    assert json.loads("".join(p["function"].get("arguments") or "" for p in pieces)) == json.loads(call["arguments"])
    assert collected["choices"][0]["finish_reason"] == events[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_completions_streamed_and_collected_say_the_same(platform: InProcess) -> None:
    body = {"model": "echo", "prompt": "Say hello.", "max_tokens": 50}
    collected = (await platform.client.post("/v1/completions", json=body)).json()
    events = await platform.events("/v1/completions", {**body, "stream": True})
    assert collected["choices"][0]["text"] == "".join(e["choices"][0]["text"] for e in events) == ANSWER
    assert await usage_ids(platform) == [collected["id"], events[0]["id"]]


async def test_a_catalog_agent_streams_and_refuses_to_collect(platform: InProcess) -> None:
    events = await platform.events("/v1/chat/completions", {"model": "talk-agent", "messages": USER, "stream": True})
    assert streamed_text(events) == ANSWER
    assert events[-1]["status"] == "completed" and events[-1]["usage"]["completion_tokens"] > 0
    refused = await platform.client.post("/v1/chat/completions", json={"model": "talk-agent", "messages": USER})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1214"
    assert await usage_ids(platform) == [events[0]["id"]]  # the refused call was not billed


async def test_an_agent_on_another_model_and_its_function_call(platform: InProcess) -> None:
    body = {"model": "talk-agent", "agent_model": "script-function", "messages": USER, "tools": [WEATHER]}
    events = await platform.events("/v1/chat/completions", {**body, "stream": True})
    last = events[-1]
    assert last["status"] == "requires_action" and last["choices"][0]["finish_reason"] == "tool_calls"
    assert last["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    unknown = await platform.client.post(
        "/v1/chat/completions", json={**body, "agent_model": "no-such-model", "stream": True}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "1211"


async def test_a_glm_chat_is_stored_under_its_conversation(platform: InProcess) -> None:
    created = await platform.client.post(
        "/v1/glms", json={"name": "Greeter", "config": {"model": "echo", "instructions": "Greet.", "tools": []}}
    )
    assert created.status_code == 200, created.text
    glm = created.json()["id"]
    events = await platform.events("/v1/chat/completions", {"model": glm, "messages": USER, "stream": True})
    assert streamed_text(events) == ANSWER
    conversation = events[-1]["conversation_id"]
    await platform.state.conversations.drain()
    detail = (await platform.client.get(f"/v1/assistant/conversations/{conversation}")).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    assert detail["messages"][1]["content"] == ANSWER
    missing = await platform.client.post("/v1/chat/completions", json={"model": "0" * 24, "messages": USER})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "1211"


async def test_the_assistant_api_runs_a_turn_and_suggests(platform: InProcess) -> None:
    body = {
        "assistant_id": "talk-agent",
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    events = await platform.events("/api/paas/v4/assistant", body)
    conversation = events[-1]["conversation_id"]
    texts = [e["choices"][0]["delta"].get("content") for e in events if e.get("choices")]
    assert ANSWER in "".join(t for t in texts if isinstance(t, str))
    await platform.state.conversations.drain()
    suggested = await platform.client.post(
        "/api/paas/v4/assistant/conversation/suggest",
        json={"assistant_id": "talk-agent", "conversation_id": conversation},
    )
    assert suggested.status_code == 200, suggested.text
    assert len(await usage_ids(platform)) == 2  # the turn and the suggestion


async def test_a_request_for_an_unknown_model_is_1211_and_bills_nothing(platform: InProcess) -> None:
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = {"model": "nope", "messages": USER, "prompt": "x"}
        refused = await platform.client.post(path, json=body)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "1211"
    assert await usage_ids(platform) == []


async def test_models_carry_real_created_times(platform: InProcess, tmp_path: Path) -> None:
    """A scripted model has no weights file: its card and its agents' are dated by the catalog file."""
    written = int((tmp_path / "models.toml").stat().st_mtime)
    cards = (await platform.client.get("/v1/models")).json()["data"]
    assert {c["id"]: c["created"] for c in cards if c["kind"] in ("chat", "agent")} == {
        "echo": written,
        "echo-roleplay": written,
        "script-function": written,
        "talk-agent": written,
        "function-agent": written,
    }
    one = (await platform.client.get("/api/paas/v4/models/echo")).json()
    assert one["created"] == written and one["kind"] == "chat"


async def test_a_variant_is_billed_at_its_own_price_and_meta_reaches_the_prompt(platform: InProcess) -> None:
    meta = {"bot_name": "Captain Flint", "bot_info": "A pirate.", "user_name": "Jim"}
    body = {"model": "echo-roleplay", "messages": USER, "meta": meta}
    answer = (await platform.client.post("/api/paas/v4/chat/completions", json=body)).json()
    assert answer["choices"][0]["message"]["content"] == "Arr, Flint speaks."  # the persona was in the prompt
    plain = (await platform.client.post("/api/paas/v4/chat/completions", json={**body, "model": "echo"})).json()
    assert plain["choices"][0]["message"]["content"] == "Arr, Flint speaks."  # meta works on any chat model
    variant, base = await platform.usage()
    assert (variant.model, base.model) == ("echo-roleplay", "echo")
    tokens = variant.prompt_tokens * 2 + variant.completion_tokens * 3  # CNY per 1K tokens, in nano-yuan
    assert variant.cost == tokens * 1_000_000 and base.cost == 0
    cards = {c["id"]: c for c in (await platform.client.get("/v1/models")).json()["data"]}
    assert cards["echo-roleplay"]["root"] == "echo" and cards["echo-roleplay"]["kind"] == "chat"


async def test_web_search_without_a_provider_says_so(platform: InProcess) -> None:
    search = {"type": "web_search", "web_search": {"enable": True}}
    refused = await platform.client.post(
        "/api/paas/v4/chat/completions", json={"model": "echo", "messages": USER, "tools": [search]}
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1212"
    assert "OPENGLM_BROWSER_SEARCH" in refused.json()["error"]["message"]
    off = {"type": "web_search", "web_search": {"enable": False}}
    answered = await platform.client.post(
        "/api/paas/v4/chat/completions", json={"model": "echo", "messages": USER, "tools": [off]}
    )
    assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"] == ANSWER
    direct = await platform.client.post("/api/paas/v4/web_search", json={"search_query": "kites"})
    assert direct.status_code == 400 and direct.json()["error"]["code"] == "1212"
    missing = await platform.client.post("/api/paas/v4/web_search", json={"count": 3})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "1213"
    assert await usage_ids(platform) == [answered.json()["id"]]  # only the answered call was billed


async def test_an_image_to_a_model_that_cannot_see_is_refused_not_dropped(platform: InProcess) -> None:
    picture = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]
    for model, stream in (("echo", False), ("echo", True), ("talk-agent", True)):
        refused = await platform.client.post(
            "/api/paas/v4/chat/completions", json={"model": model, "messages": picture, "stream": stream}
        )
        assert refused.status_code == 400, (model, refused.text)
        assert refused.json()["error"]["code"] == "1210" and "cannot see images" in refused.json()["error"]["message"]
    assert await usage_ids(platform) == []
