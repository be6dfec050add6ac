"""GLMs through the real server: create, edit into versions, share, the agent center, and clear refusals."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import MODEL
from .server import RunningServer

CONFIG: dict[str, Any] = {"instructions": "Answer in rhyme.", "model": MODEL, "starter_prompts": ["Rhyme me a cat"]}


def post(server: RunningServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body)


def test_create_edit_version_and_list(server: RunningServer) -> None:
    created = post(server, "/v1/glms", {"name": "Rhymer", "description": "rhymes", "config": CONFIG})
    assert created.status_code == 200, created.text
    agent = created.json()
    assert agent["version"] == 1 and agent["mine"] and agent["config"]["instructions"] == "Answer in rhyme."
    edited = httpx.put(
        f"{server.url}/api/paas/v4/glms/{agent['id']}",
        json={"visibility": "listed", "config": {**CONFIG, "instructions": "Limericks."}},
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    versions = httpx.get(f"{server.url}/v1/glms/{agent['id']}/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1] and versions[1]["config"]["instructions"] == "Answer in rhyme."
    center = httpx.get(f"{server.url}/v1/glms/center", params={"q": "rhym"}).json()
    assert agent["id"] in [a["id"] for a in center["data"]]
    mine = httpx.get(f"{server.url}/v1/glms").json()
    assert agent["id"] in [a["id"] for a in mine["data"]]
    assert httpx.delete(f"{server.url}/v1/glms/{agent['id']}").status_code == 200
    assert httpx.get(f"{server.url}/v1/glms/{agent['id']}").status_code == 404


def test_bad_agents_are_refused_clearly(server: RunningServer) -> None:
    cases = [
        ({"name": "x", "config": {**CONFIG, "model": "no-such-model"}}, "1211"),
        ({"name": "x", "config": {**CONFIG, "tools": ["retrieval"]}}, "1214"),
        ({"name": "x", "config": {**CONFIG, "knowledge_ids": ["404"]}}, "1214"),
        ({"name": "x", "config": {**CONFIG, "http_apis": [{"openapi": "/etc/passwd"}]}}, None),
        ({"name": "", "config": CONFIG}, None),
        ({"name": "x"}, None),
    ]
    before = httpx.get(f"{server.url}/v1/glms").json()["total"]
    for body, code in cases:
        response = post(server, "/v1/glms", body)
        assert response.status_code == 400, (body, response.text)
        assert "error" in response.json() and (code is None or response.json()["error"]["code"] == code)
    assert httpx.get(f"{server.url}/v1/glms").json()["total"] == before  # nothing half-made
