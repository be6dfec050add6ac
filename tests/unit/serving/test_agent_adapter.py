"""A catalog model's ``agent_adapter``: All Tools agents planning on the model use it (catalog agents, GLMs and
the Assistant API all prepare their runs through ``AgentLoop.prepare``), plain chat does not, an agent with
``base_only`` does not, a fine-tuned model's own adapter wins, and a missing file fails the start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest

from openglm.agent.loop import AgentLoop, FunctionCall, Text
from openglm.catalog import AgentSpec, Catalog, CatalogError, ModelSpec
from openglm.config import Settings
from openglm.errors import EngineError
from openglm.protocol.chat import ChatCompletionRequest
from openglm.serving.models import ModelPool
from openglm.serving.service import ChatService
from openglm.serving.usage import Tally
from openglm.tuning.finetuned import AdapterTarget


def pool_with(adapter: str | None) -> ModelPool:
    spec = ModelSpec(
        id="base-model",
        aliases=["default"],
        engine="scripted",
        source="-",
        agent_adapter=adapter,
        options={"script": [{"when": "", "reply": "hi"}]},
    )
    pool = ModelPool(Catalog([spec]), Settings(load_models=""))
    asyncio.run(pool.start())
    return pool


def request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "agent", "messages": [{"role": "user", "content": "hi"}]})


def test_agents_plan_with_the_models_adapter_unless_base_only(tmp_path: Path) -> None:
    adapter = tmp_path / "agent.gguf"
    adapter.write_bytes(b"GGUF")
    pool = pool_with(str(adapter))
    loop = AgentLoop(ChatService(pool), {})
    try:
        run = loop.prepare(AgentSpec(id="agent", model="default"), request(), "acct")
        assert run.adapter == AdapterTarget("base-model+agent", "base-model", adapter)
        base = loop.prepare(AgentSpec(id="agent", model="default", base_only=True), request(), "acct")
        assert base.adapter is None
        mine = AdapterTarget("ft:base-model:x:1", "base-model", tmp_path / "ft.gguf")
        assert loop.prepare(AgentSpec(id="agent", model="default"), request(), "acct", adapter=mine).adapter == mine
        assert pool.agent_adapter("base-model") is not None
    finally:
        asyncio.run(pool.stop())


def test_a_model_without_an_agent_adapter_plans_on_its_base() -> None:
    pool = pool_with(None)
    try:
        assert (
            AgentLoop(ChatService(pool), {}).prepare(AgentSpec(id="a", model="default"), request(), "x").adapter is None
        )
    finally:
        asyncio.run(pool.stop())


def test_a_missing_agent_adapter_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        pool_with("package:openglm/adapters/no-such-adapter.gguf")


WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def deciding_pool(
    plain_replies: Literal["adapter", "base"],
    adapter_prose: str = "adapter prose",
    *,
    confidence: float = 0.0,
    call_probability: float = 1.0,
) -> ModelPool:
    """The base answers "base prose" to everything; the adapter calls get_weather for the weather (that sure of
    each token) and writes "adapter prose" otherwise."""
    spec = ModelSpec(
        id="base-model",
        aliases=["default"],
        engine="scripted",
        source="-",
        tool_parser="hermes",
        agent_adapter="package:openglm/adapters/alltools-smollm2-135m.gguf",
        agent_plain_replies=plain_replies,
        agent_tool_confidence=confidence,
        options={
            "script": [{"when": "", "reply": "base prose"}],
            "adapter_script": [
                {"when": "in Paris", "reply": WEATHER_CALL, "probability": call_probability},
                {"when": "", "reply": adapter_prose},
            ],
        },
    )
    pool = ModelPool(Catalog([spec]), Settings(load_models=""))
    asyncio.run(pool.start())
    return pool


WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def turn(
    pool: ModelPool, text: str, *, tools: bool = True, tool_choice: str | None = None
) -> tuple[str, list[str], Tally]:
    """One agent request's text, the functions it called, and what it was billed for."""
    body: dict[str, object] = {"model": "agent", "messages": [{"role": "user", "content": text}]}
    if tools:
        body["tools"] = [WEATHER_TOOL]
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    loop = AgentLoop(ChatService(pool), {})
    run = loop.prepare(AgentSpec(id="agent", model="default"), ChatCompletionRequest.model_validate(body), "acct")
    tally = Tally()

    async def collect() -> tuple[str, list[str]]:
        text, calls = "", []
        async for event in loop.run(run, tally):
            if isinstance(event, Text):
                text += event.text
            elif isinstance(event, FunctionCall) and event.name:
                calls.append(event.name)
        return text, calls

    text_out, calls = asyncio.run(collect())
    return text_out, calls, tally


def test_plain_replies_on_base_the_adapter_decides_and_the_base_writes_the_prose() -> None:
    pool, one_round = deciding_pool("base"), deciding_pool("adapter")
    try:
        text, calls, tally = turn(pool, "hello there")
        assert (text, calls) == ("base prose", [])
        # Billed once, for the base's round: the same prompt as a round with no probe before it.
        assert tally.prompt_tokens == turn(one_round, "hello there")[2].prompt_tokens > 0
        assert tally.completion_tokens == tally.generated == len("base prose") // 4 + 1
        # With no tool to choose, the base answers without asking the adapter.
        assert turn(pool, "hello there", tools=False)[0] == "base prose"
        assert turn(pool, "the weather in Paris?", tool_choice="none")[:2] == ("base prose", [])
        # A tool call is the adapter's, as it was: the loop hands the user's function back to the client.
        text, calls, _ = turn(pool, "the weather in Paris?")
        assert calls == ["get_weather"] and text == ""
    finally:
        asyncio.run(pool.stop())
        asyncio.run(one_round.stop())


def test_plain_replies_on_the_adapter_by_default() -> None:
    pool = deciding_pool("adapter")
    try:
        assert turn(pool, "hello there")[:2] == ("adapter prose", [])
        assert turn(pool, "the weather in Paris?")[1] == ["get_weather"]
    finally:
        asyncio.run(pool.stop())


def test_an_empty_adapter_reply_is_asked_again_of_the_base() -> None:
    pool = deciding_pool("base", adapter_prose="")
    try:
        assert turn(pool, "hello there")[:2] == ("base prose", [])
    finally:
        asyncio.run(pool.stop())


def test_a_call_the_adapter_is_unsure_of_is_dropped_and_the_base_answers() -> None:
    unsure = deciding_pool("base", confidence=0.6, call_probability=0.4)
    sure = deciding_pool("base", confidence=0.6, call_probability=0.7)
    one_round = deciding_pool("adapter")
    try:
        text, calls, tally = turn(unsure, "the weather in Paris?")
        assert (text, calls) == ("base prose", [])
        # Billed once, for the base's round, as when the adapter writes prose.
        assert tally.prompt_tokens == turn(one_round, "the weather in Paris?")[2].prompt_tokens > 0
        assert tally.completion_tokens == len("base prose") // 4 + 1
        assert turn(sure, "the weather in Paris?")[1] == ["get_weather"]
        # Plain prose is the base's whatever the threshold.
        assert turn(sure, "hello there")[:2] == ("base prose", [])
    finally:
        for pool in (unsure, sure, one_round):
            asyncio.run(pool.stop())


def test_the_tool_confidence_is_a_probability_that_judges_a_deciding_adapter() -> None:
    def spec(**fields: object) -> ModelSpec:
        return ModelSpec.model_validate({"id": "m", "source": "-", **fields})

    deciding = {"agent_adapter": "a.gguf", "agent_plain_replies": "base"}
    with pytest.raises(ValueError):
        spec(agent_tool_confidence=1.5, **deciding)
    with pytest.raises(ValueError, match="agent_adapter"):
        spec(agent_tool_confidence=0.9)  # no adapter to judge
    with pytest.raises(ValueError, match="agent_plain_replies"):
        spec(agent_tool_confidence=0.9, agent_adapter="a.gguf")  # the adapter writes all
    assert spec(agent_tool_confidence=0.9, **deciding).agent_tool_confidence == 0.9


def test_an_engine_without_logprobs_is_refused_a_tool_confidence(tmp_path: Path) -> None:
    adapter = tmp_path / "agent.gguf"
    adapter.write_bytes(b"GGUF")
    spec = ModelSpec(
        id="remote-model",
        engine="remote",
        source="http://127.0.0.1:9/v1",
        agent_adapter=str(adapter),
        agent_plain_replies="base",
        agent_tool_confidence=0.9,
    )
    with pytest.raises(CatalogError, match="logprobs"):
        asyncio.run(ModelPool(Catalog([spec]), Settings(load_models="")).start())


def test_agent_rounds_do_not_compute_logprobs_a_client_asked_for() -> None:
    """Agents return none; only the adapter's probe asks for its first token's."""
    pool = deciding_pool("base", confidence=0.6)
    try:
        loop = AgentLoop(ChatService(pool), {})
        body = {"model": "agent", "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 3}
        run = loop.prepare(AgentSpec(id="agent", model="default"), ChatCompletionRequest.model_validate(body), "a")
        round_request = loop.round_request(run, first=True)
        assert round_request.logprobs is None and round_request.top_logprobs is None
    finally:
        asyncio.run(pool.stop())


@pytest.mark.parametrize("probability", [0, 1.5, "high", True])
def test_a_scripted_rule_s_probability_is_a_number_in_zero_one(probability: object) -> None:
    spec = ModelSpec(
        id="m", engine="scripted", source="-", options={"script": [{"reply": "x", "probability": probability}]}
    )
    with pytest.raises(EngineError, match="probability"):
        asyncio.run(ModelPool(Catalog([spec]), Settings(load_models="")).start())
