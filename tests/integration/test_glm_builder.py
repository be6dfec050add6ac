"""Create a GLM by conversation, on the real server and the real default model: a first message drafts an agent,
a second revises it, the draft saves as it is, bad turns are 400s, and each turn is one metered call."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from openglm.protocol.glms import AgentConfig

from .server import RunningServer

OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "info": {"title": "weather", "version": "1"},
        "paths": {"/weather": {"get": {"operationId": "weather", "responses": {"200": {"description": "ok"}}}}},
    }
)
BUILT_INS = {"code_interpreter", "web_browser", "drawing_tool", "retrieval"}
FIRST = {"role": "user", "content": "Make me an agent that plans vegetable gardens and works out seed counts."}


def build(server: RunningServer, body: dict[str, Any], prefix: str = "/v1") -> httpx.Response:
    return httpx.post(f"{server.url}{prefix}/glms/builder", json=body, timeout=600)


def builder_charges(server: RunningServer) -> list[dict[str, Any]]:
    entries = httpx.get(f"{server.url}/v1/account/ledger", params={"limit": 1000}).json()["data"]
    return [e for e in entries if e["note"] == "glms.builder"]


def check_draft(draft: dict[str, Any]) -> AgentConfig:
    assert set(draft) >= {"name", "description", "config"}
    assert isinstance(draft["name"], str) and 1 <= len(draft["name"]) <= 100
    assert isinstance(draft["description"], str)
    return AgentConfig.model_validate(draft["config"])


def test_a_first_message_drafts_an_agent_that_saves_as_it_is(server: RunningServer) -> None:
    charges = len(builder_charges(server))
    answer = build(server, {"messages": [FIRST]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert isinstance(body["reply"], str) and body["reply"]
    config = check_draft(body["draft"])
    assert config.model == "smollm2-135m-instruct"  # the builder model, the catalog's default
    assert "retrieval" not in config.tools  # no knowledge bases: the builder cannot enable it
    assert config.knowledge_ids == [] and config.http_apis == []
    saved = httpx.post(f"{server.url}/v1/glms", json=body["draft"])
    assert saved.status_code == 200, saved.text
    assert saved.json()["config"] == body["draft"]["config"] and saved.json()["name"] == body["draft"]["name"]
    after = builder_charges(server)
    assert len(after) == charges + 1  # one usage record (and its charge) per turn
    usage = httpx.get(f"{server.url}/v1/account/usage", params={"by": "model"}).json()
    assert "smollm2-135m-instruct" in [row["group"] for row in usage["data"]]


def test_a_second_message_revises_the_draft_and_keeps_what_the_model_cannot_set(server: RunningServer) -> None:
    knowledge = httpx.post(f"{server.url}/v1/knowledge", json={"name": "garden notes"}).json()
    draft = {
        "name": "Gardener",
        "description": "Plans gardens.",
        "avatar": "https://example.com/gardener.png",
        "visibility": "link",
        "config": {
            "instructions": "Help people plan vegetable gardens.",
            "model": "default",
            "tools": ["retrieval"],
            "knowledge_ids": [knowledge["id"]],
            "http_apis": [{"openapi": OPENAPI, "base_url": "https://api.example.com"}],
            "starter_prompts": ["What grows in shade?"],
        },
    }
    messages = [FIRST, {"role": "assistant", "content": "Here is a draft."}, {"role": "user", "content": "Friendlier."}]
    answer = build(server, {"messages": messages, "draft": draft}, prefix="/api/paas/v4")
    assert answer.status_code == 200, answer.text
    revised = answer.json()["draft"]
    config = check_draft(revised)
    assert revised["avatar"] == draft["avatar"] and revised["visibility"] == "link"
    assert config.model == "default" and config.knowledge_ids == [knowledge["id"]]
    assert [api.model_dump() for api in config.http_apis] == [
        {"openapi": OPENAPI, "base_url": "https://api.example.com", "auth": {}}
    ]
    assert set(config.tools) <= BUILT_INS
    saved = httpx.post(f"{server.url}/api/paas/v4/glms", json=revised)
    assert saved.status_code == 200, saved.text
    assert saved.json()["visibility"] == "link" and saved.json()["config"]["knowledge_ids"] == [knowledge["id"]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messages": []}, "1214"),
        ({"messages": [{"role": "system", "content": "x"}]}, "1214"),
        ({"messages": [FIRST, {"role": "assistant", "content": "ok"}]}, "1214"),
        ({"messages": [{"role": "user", "content": "   "}]}, "1214"),
        ({"messages": [{"role": "user"}]}, None),
        ({"draft": None}, None),
        ({"messages": [FIRST], "model": "no-such-model"}, "1211"),
        ({"messages": [FIRST], "draft": {"name": "x", "config": {"model": "default", "tools": ["nope"]}}}, None),
        ({"messages": [FIRST], "draft": {"name": "x", "config": {"model": "no-such-model"}}}, "1211"),
        ({"messages": [FIRST], "draft": {"name": "x"}}, None),
        (
            {"messages": [FIRST], "draft": {"name": "x", "config": {"model": "default", "knowledge_ids": ["404"]}}},
            "1214",
        ),
    ],
    ids=[
        "no-messages",
        "bad-role",
        "ends-with-assistant",
        "blank",
        "no-content",
        "no-messages-field",
        "unknown-model",
        "unknown-tool",
        "draft-unknown-model",
        "draft-without-config",
        "draft-foreign-knowledge",
    ],
)
def test_bad_turns_are_400s_and_cost_nothing(server: RunningServer, body: dict[str, Any], code: str | None) -> None:
    charges = len(builder_charges(server))
    answer = build(server, body)
    assert answer.status_code == 400, answer.text
    assert code is None or answer.json()["error"]["code"] == code
    assert len(builder_charges(server)) == charges
