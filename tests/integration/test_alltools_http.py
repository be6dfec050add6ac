"""An agent with server-side HTTP tools from an OpenAPI document: the server calls the API (with its key) and
feeds the answer back; the client sees the call and its outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..fixtures.api_server import API_KEY, ApiServer, openapi
from .conftest import write_catalog
from .server import RunningServer
from .test_alltools import call, stream, user


def catalog(api: ApiServer) -> str:
    reply = call("get_weather", {"city": "Beijing", "units": "metric"})
    return f"""
[[models]]
id = "script-api"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = '"temp": 22'
reply = "It is 22 degrees in Beijing."
[[models.options.script]]
when = ""
reply = {reply}

[[agents]]
id = "weather-agent"
model = "script-api"
[[agents.http_apis]]
openapi = {json.dumps(json.dumps(openapi(api.url)))}
auth = {{ type = "header", name = "X-Api-Key", value = "{API_KEY}" }}
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, ApiServer]]:
    api = ApiServer()
    tmp: Path = tmp_path_factory.mktemp("http-tools")
    env = {"OPENGLM_BROWSER_ALLOW": "127.0.0.1", "OPENGLM_SANDBOX_WARM": "0"}
    server = RunningServer(models_file=write_catalog(tmp / "models.toml", catalog(api)), log=tmp / "s.log", env=env)
    yield server, api
    server.stop()
    api.stop()


def test_the_server_calls_the_api_and_answers(agent: tuple[RunningServer, ApiServer]) -> None:
    server, api = agent
    chunks = stream(server, model="weather-agent", messages=user("Weather in Beijing?"))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas if d.get("role") == "assistant" and d.get("tool_calls")]
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[-1]["function"]["arguments"]) == {"city": "Beijing", "units": "metric"}
    assert {c["function"]["arguments"] for c in calls[:-1]} == {""}  # whole, in the chunk that ends the calls
    ending = next(c for c in chunks if c["choices"][0].get("finish_reason") == "tool_calls")
    assert ending["choices"][0]["delta"]["tool_calls"] == [calls[-1]]
    (result,) = [d["tool_calls"][0] for d in deltas if d.get("role") == "tool"]
    assert result["type"] == "function" and result["function"]["outputs"][0]["status"] == 200
    assert api.calls[-1] == {"method": "GET", "path": "/cities/Beijing/weather", "query": {"units": ["metric"]}}
    assert "".join(d.get("content") or "" for d in deltas) == "It is 22 degrees in Beijing."
    assert chunks[-1]["status"] == "completed"
