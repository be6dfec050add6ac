"""Issue #12, item 2: one request with a huge ``maxLength`` (or a deeply nested grammar) killed the server.

Each attack goes to the real server (authentication on, a user key) and must get a 400 (1214) that names the
limit, after which the server still answers ``/health`` and an ordinary chat. A schema at the limits still
compiles and constrains the answer. The server runs under an address-space cap so that a regression fails this
test instead of exhausting the machine's memory.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, error_code, new_key

MODEL = "default"
SERVER_ADDRESS_SPACE = 6 * 1024**3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(log=tmp_path_factory.mktemp("grammar") / "server.log", env={"OPENGLM_AUTH": "on"})
    resource.prlimit(running.process.pid, resource.RLIMIT_AS, (SERVER_ADDRESS_SPACE, SERVER_ADDRESS_SPACE))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def headers(server: RunningServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_key(server, 'grammar-tenant')}"}


def chat(server: RunningServer, headers: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, **body}
    return httpx.post(f"{server.url}/v1/chat/completions", json=payload, headers=headers, timeout=120)


def assert_still_serving(server: RunningServer, headers: dict[str, str]) -> None:
    assert server.process.poll() is None, "the server process died"
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    answer = chat(server, headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


@pytest.mark.parametrize("max_length", [1_000_000_000, 10_000_000])
def test_a_huge_max_length_is_refused_and_the_server_keeps_serving(
    server: RunningServer, headers: dict[str, str], max_length: int
) -> None:
    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": max_length}}}
    refused = chat(server, headers, response_format=response_format(schema))
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    message = refused.json()["error"]["message"]
    assert "properties.text.maxLength" in message and "1000" in message
    assert_still_serving(server, headers)


def test_a_huge_tool_parameter_schema_is_refused(server: RunningServer, headers: dict[str, str]) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "save",
            "parameters": {"type": "object", "properties": {"note": {"type": "string", "maxLength": 10_000_000}}},
        },
    }
    for choice in ("required", "auto"):  # a forced call and a lazy (auto-mode) call grammar
        refused = chat(server, headers, tools=[tool], tool_choice=choice)
        assert refused.status_code == 400, refused.text
        assert error_code(refused) == "1214"
        assert "tools[0].function.parameters.properties.note.maxLength" in refused.json()["error"]["message"]
    assert_still_serving(server, headers)


@pytest.mark.parametrize(
    ("grammar", "limit"),
    [
        ("root ::= " + "(" * 30_000 + '"a"' + ")" * 30_000, "nests parentheses"),  # llama.cpp's parser: C stack
        ("root ::= " + " ".join('"a"{0,999}' for _ in range(2000)), "rule elements"),  # expansion
    ],
)
def test_a_costly_raw_grammar_is_refused(
    server: RunningServer, headers: dict[str, str], grammar: str, limit: str
) -> None:
    body = {"model": MODEL, "prompt": "Say a", "max_tokens": 4, "grammar": grammar}
    refused = httpx.post(f"{server.url}/v1/completions", json=body, headers=headers, timeout=120)
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    assert limit in refused.json()["error"]["message"]
    assert_still_serving(server, headers)


def test_a_schema_at_the_limits_still_constrains_the_answer(server: RunningServer, headers: dict[str, str]) -> None:
    at_limit = {"type": "string", "maxLength": 1000}
    schema = {
        "type": "object",
        "properties": {
            "city": at_limit,
            "tags": {"type": "array", "items": at_limit, "maxItems": 1000},
            "notes": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{0,1000}$"}, "maxItems": 1000},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    answer = chat(
        server,
        headers,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON with the key city."}],
        response_format=response_format(schema),
        max_tokens=60,
        do_sample=False,
    )
    assert answer.status_code == 200, answer.text
    choice = answer.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    value = json.loads(choice["message"]["content"])
    assert set(value) <= {"city", "tags", "notes"} and isinstance(value["city"], str) and len(value["city"]) <= 1000
