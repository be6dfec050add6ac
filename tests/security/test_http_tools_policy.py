"""Item 5: a user's GLM must not reach the services the operator opened to the browser. User-defined HTTP tools
reach public addresses only, unless the operator allow-lists a host for HTTP tools (OPENGLM_HTTP_TOOLS_ALLOW);
catalog agents, written by the operator, still call the servers their documents name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.api_server import API_KEY, ApiServer, openapi
from tests.integration.conftest import write_catalog

from .conftest import RunningServer, hermes_call, new_key

AUTH = {"type": "header", "name": "X-Api-Key", "value": API_KEY}


def catalog(internal: ApiServer) -> str:
    return f"""
[[models]]
id = "script-http"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = '"temp": 22'
reply = "reached"
[[models.options.script]]
when = "was refused"
reply = "refused"
[[models.options.script]]
when = ""
reply = {hermes_call("get_weather", {"city": "Oslo"})}

[[agents]]
id = "operator-agent"
model = "script-http"
[[agents.http_apis]]
openapi = {json.dumps(json.dumps(openapi(internal.url)))}
auth = {{ type = "header", name = "X-Api-Key", value = "{API_KEY}" }}
"""


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[ApiServer, ApiServer]]:
    internal, allowed = ApiServer(), ApiServer()
    yield internal, allowed
    internal.stop()
    allowed.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, services: tuple[ApiServer, ApiServer]) -> Iterator[RunningServer]:
    internal, allowed = services
    tmp: Path = tmp_path_factory.mktemp("http-tools-policy")
    env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_SANDBOX_WARM": "0",
        # The operator opened loopback to the browser (an internal wiki, say) ...
        "OPENGLM_BROWSER_ALLOW": "127.0.0.1",
        # ... and one loopback service, by host:port, to HTTP tools.
        "OPENGLM_HTTP_TOOLS_ALLOW": allowed.url.removeprefix("http://"),
    }
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", catalog(internal)), log=tmp / "s.log", env=env
    )
    yield running
    running.stop()


def chat(server: RunningServer, key: str, model: str) -> tuple[list[dict[str, Any]], str]:
    """The tool results' deltas of a streamed chat and its answer."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
    deltas = []
    with httpx.stream(
        "POST",
        f"{server.url}/api/paas/v4/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                deltas.append(json.loads(line[6:])["choices"][0]["delta"])
    results = [d["tool_calls"][0] for d in deltas if d.get("role") == "tool"]
    return results, "".join(d.get("content") or "" for d in deltas if d.get("role") != "tool")


def create_glm(server: RunningServer, key: str, api: ApiServer) -> str:
    config = {"model": "script-http", "http_apis": [{"openapi": json.dumps(openapi(api.url)), "auth": AUTH}]}
    created = httpx.post(
        f"{server.url}/v1/glms", json={"name": "Weather", "config": config}, headers={"Authorization": f"Bearer {key}"}
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def test_a_users_glm_cannot_call_a_service_allow_listed_for_the_browser(
    server: RunningServer, services: tuple[ApiServer, ApiServer]
) -> None:
    internal, _ = services
    key = new_key(server, "mallory")
    glm = create_glm(server, key, internal)
    before = len(internal.calls)
    results, answer = chat(server, key, glm)
    assert len(internal.calls) == before  # nothing reached the internal service
    (result,) = results
    content = result["function"]["outputs"][0]["content"]
    assert content.startswith("refused:") and "private or local address" in content
    assert "OPENGLM_HTTP_TOOLS_ALLOW" in content and answer == "refused"


def test_a_service_allow_listed_for_http_tools_is_reachable(
    server: RunningServer, services: tuple[ApiServer, ApiServer]
) -> None:
    _, allowed = services
    key = new_key(server, "alice")
    glm = create_glm(server, key, allowed)
    results, answer = chat(server, key, glm)
    (result,) = results
    assert result["function"]["outputs"][0]["status"] == 200 and answer == "reached"
    assert allowed.calls[-1]["path"] == "/cities/Oslo/weather"


def test_an_operator_agent_still_calls_the_internal_service_its_document_names(
    server: RunningServer, services: tuple[ApiServer, ApiServer]
) -> None:
    internal, _ = services
    results, answer = chat(server, new_key(server, "carol"), "operator-agent")
    assert results[0]["function"]["outputs"][0]["status"] == 200 and answer == "reached"
    assert internal.calls[-1]["path"] == "/cities/Oslo/weather"
