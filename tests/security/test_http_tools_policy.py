"""Item 5: a user's GLM must not reach the services the operator opened to the browser. User-defined HTTP tools
reach public addresses only, unless the operator allow-lists a host for HTTP tools (OPENGLM_HTTP_TOOLS_ALLOW);
catalog agents, written by the operator, still call the servers their documents name.

And what an allowed service can do back (review of item 5): a small gzip body must not cost the server its
inflated size in memory, a service trickling bytes must not hold a call past OPENGLM_HTTP_DEADLINE, and a GLM must
not reach another virtual host behind an allowed address by setting ``Host`` itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.api_server import API_KEY, ApiServer, openapi
from tests.fixtures.hostile_http import ADMIN_SECRET, HostileHttp
from tests.integration.conftest import write_catalog

from .conftest import RunningServer, error_code, hermes_call, new_key

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
when = "vhost ["
reply = "seen"
[[models.options.script]]
when = "API call failed"
reply = "failed"
[[models.options.script]]
when = "HTTP 200"
reply = "done"
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
def hostile() -> Iterator[HostileHttp]:
    service = HostileHttp(bomb_mib=BOMB_MIB)
    yield service
    service.stop()


BOMB_MIB = 256  # inflated; about 250 KiB on the wire
DEADLINE = 3  # OPENGLM_HTTP_DEADLINE of the server under test


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, services: tuple[ApiServer, ApiServer], hostile: HostileHttp
) -> Iterator[RunningServer]:
    internal, allowed = services
    tmp: Path = tmp_path_factory.mktemp("http-tools-policy")
    env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_SANDBOX_WARM": "0",
        # The operator opened loopback to the browser (an internal wiki, say) ...
        "OPENGLM_BROWSER_ALLOW": "127.0.0.1",
        # ... and two loopback services, by host:port, to HTTP tools (the second misbehaves).
        "OPENGLM_HTTP_TOOLS_ALLOW": f"{allowed.url.removeprefix('http://')},127.0.0.1:{hostile.port}",
        "OPENGLM_HTTP_DEADLINE": str(DEADLINE),
    }
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", catalog(internal)), log=tmp / "s.log", env=env
    )
    yield running
    running.stop()


def chat(server: RunningServer, key: str, model: str, timeout: float = 60) -> tuple[list[dict[str, Any]], str]:
    """The tool results' deltas of a streamed chat and its answer."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
    deltas = []
    with httpx.stream(
        "POST",
        f"{server.url}/api/paas/v4/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                deltas.append(json.loads(line[6:])["choices"][0]["delta"])
    results = [d["tool_calls"][0] for d in deltas if d.get("role") == "tool"]
    return results, "".join(d.get("content") or "" for d in deltas if d.get("role") != "tool")


def create_glm(server: RunningServer, key: str, api: ApiServer | str, auth: dict[str, str] = AUTH) -> str:
    created = save_glm(server, key, api if isinstance(api, str) else api.url, auth)
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def save_glm(
    server: RunningServer, key: str, url: str, auth: dict[str, str], document: dict[str, Any] | None = None
) -> httpx.Response:
    api = {"openapi": json.dumps(document or openapi(url)), "auth": auth}
    return httpx.post(
        f"{server.url}/v1/glms",
        json={"name": "Weather", "config": {"model": "script-http", "http_apis": [api]}},
        headers={"Authorization": f"Bearer {key}"},
    )


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


def rss_mib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_a_gzip_bomb_costs_the_server_only_what_the_model_reads(server: RunningServer, hostile: HostileHttp) -> None:
    """A 250 KiB gzip body of 256 MiB of zeros: the server's peak memory (VmHWM, reset first) stays near its
    resident size; before the fix each 64 KiB piece was inflated whole (~64 MiB) before 16 KB were kept."""
    key = new_key(server, "bomber")
    glm = create_glm(server, key, f"{hostile.url}/bomb")
    pid = server.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak resident size starts again from the current one
    before = rss_mib(pid, "VmRSS")
    results, answer = chat(server, key, glm)
    grew = rss_mib(pid, "VmHWM") - before
    output = results[0]["function"]["outputs"][0]
    assert output["status"] == 200 and output["content"] == "\x00" * 4000 and answer == "done"
    assert grew < 32, f"the server's peak memory grew {grew} MiB for a {len(hostile.bomb) // 1024} KiB body"


def test_a_trickling_service_cannot_hold_a_call_past_the_deadline(server: RunningServer, hostile: HostileHttp) -> None:
    """One byte every half second: every read is quick, so only a total deadline ends the call (before the fix the
    tool read 16 KB of it: over two hours, holding the caller's concurrency slot and reservation)."""
    key = new_key(server, "trickler")
    glm = create_glm(server, key, f"{hostile.url}/trickle")
    started = time.monotonic()
    results, answer = chat(server, key, glm, timeout=DEADLINE + 30)
    took = time.monotonic() - started
    content = results[0]["function"]["outputs"][0]["content"]
    assert content.startswith("request failed:") and f"did not answer in full within {DEADLINE} s" in content
    assert answer == "failed" and took < DEADLINE + 10


@pytest.mark.parametrize("name", ["Host", "host", "Transfer-Encoding", "Connection", "Proxy-Authorization"])
def test_a_glm_cannot_set_the_host_or_framing_headers(server: RunningServer, hostile: HostileHttp, name: str) -> None:
    """Allow-listing a service for HTTP tools must not open every virtual host behind its address: a GLM whose auth
    or header parameter names ``Host`` (or a hop-by-hop header) is refused when saved. Before the fix it was saved
    and ``Host: admin.internal`` reached the admin virtual host."""
    key = new_key(server, "vhost-hopper")
    url = f"{hostile.url}/vhost"
    by_auth = save_glm(server, key, url, {"type": "header", "name": name, "value": "admin.internal"})
    document = openapi(url)
    parameter = {"name": name, "in": "header", "schema": {"type": "string"}}
    document["paths"]["/cities/{city}/weather"]["get"]["parameters"].append(parameter)
    by_parameter = save_glm(server, key, url, {}, document)
    for refused in (by_auth, by_parameter):
        assert refused.status_code == 400, refused.text
        assert error_code(refused) == "1214" and "set by the server" in refused.json()["error"]["message"]
    seen = len(hostile.heads)
    results, answer = chat(server, key, create_glm(server, key, url, {}))
    content = results[0]["function"]["outputs"][0]["content"]
    assert content == f"vhost ['127.0.0.1:{hostile.port}']" and ADMIN_SECRET not in content and answer == "seen"
    assert len(hostile.heads) == seen + 1
