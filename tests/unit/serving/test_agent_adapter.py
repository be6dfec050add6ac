"""A catalog model's ``agent_adapter``: All Tools agents planning on the model use it (catalog agents, GLMs and
the Assistant API all prepare their runs through ``AgentLoop.prepare``), plain chat does not, an agent with
``base_only`` does not, a fine-tuned model's own adapter wins, and a missing file fails the start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openglm.agent.loop import AgentLoop
from openglm.catalog import AgentSpec, Catalog, CatalogError, ModelSpec
from openglm.config import Settings
from openglm.protocol.chat import ChatCompletionRequest
from openglm.serving.models import ModelPool
from openglm.serving.service import ChatService
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
