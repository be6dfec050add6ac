"""A generation that ends with an engine error after producing tokens is billed for the tokens it made.

Before: a non-streamed chat or completion whose engine failed midway was settled as "failed" with nothing
counted (the count was taken only once the whole answer was collected), so its reservation was given back and
nothing was charged although the engine had done the work. Now every path counts the tokens the engine produced
as they come (``Tally.generated``), and ``MeteredCall.settle`` charges a failed call for them (prompt and
completion made so far) before the error reaches the client. A scripted engine that fails after 3 tokens stands
for a crashed engine.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, new_key

MADE = 3  # tokens the engine produces before it fails
CATALOG = f"""
[[models]]
id = "flaky"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[models.prices]
input = 1
output = 1
[models.options]
fail_after = {MADE}
[[models.options.script]]
when = ""
reply = "one two three four five six seven eight nine ten"

[[agents]]
id = "flaky-agent"
model = "flaky"
"""
MESSAGES = [{"role": "user", "content": "Count to ten."}]
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "flaky", "messages": MESSAGES}),
    "chat-stream": ("/v1/chat/completions", {"model": "flaky", "messages": MESSAGES, "stream": True}),
    "completions": ("/v1/completions", {"model": "flaky", "prompt": "Count to ten.", "max_tokens": 50}),
    "completions-stream": (
        "/v1/completions",
        {"model": "flaky", "prompt": "Count to ten.", "max_tokens": 50, "stream": True},
    ),
    "agent": ("/v1/chat/completions", {"model": "flaky-agent", "messages": MESSAGES, "stream": True}),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("failed-generations")
    (tmp / "models.toml").write_text(CATALOG, encoding="utf-8")
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0"}
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env=env)
    yield running
    running.stop()


def record(server: RunningServer, request_id: str) -> tuple[int, int, int, int] | None:
    """(prompt tokens, completion tokens, cost, charge) of the call with ``request_id``."""
    with sqlite3.connect(Path(server.env["OPENGLM_DATA_DIR"]) / "openglm.db", timeout=30) as db:
        row = db.execute(
            "SELECT u.prompt_tokens, u.completion_tokens, u.cost, l.amount FROM usage_records u "
            "JOIN ledger_entries l ON l.usage_id = u.id WHERE u.request_id = ?",
            (request_id,),
        ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def error_of(response: httpx.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        errors = [json.loads(e)["error"] for e in events if e != "[DONE]" and "error" in json.loads(e)]
        assert len(errors) == 1, response.text
        return dict(errors[0])
    assert response.status_code == 500, response.text
    return dict(response.json()["error"])


@pytest.mark.parametrize("kind", list(CALLS))
def test_a_generation_that_fails_midway_is_charged_for_what_was_made(server: RunningServer, kind: str) -> None:
    key = new_key(server, f"flaky-{kind}", grant="10")
    headers = {"Authorization": f"Bearer {key}"}
    before = httpx.get(f"{server.url}/v1/account", headers=headers).json()
    path, body = CALLS[kind]
    request_id = f"{kind}-{secrets.token_hex(4)}"
    response = httpx.post(f"{server.url}{path}", json={**body, "request_id": request_id}, headers=headers, timeout=60)
    assert error_of(response)["code"] == "1260"
    assert "scripted failure" in error_of(response)["message"]

    found = record(server, request_id)
    assert found is not None, "the failed call was not recorded"
    prompt, completion, cost, charge = found
    assert prompt > 0 and completion == MADE
    assert cost > 0 and charge == -cost
    after = httpx.get(f"{server.url}/v1/account", headers=headers).json()
    assert after["balance"] != before["balance"], (before, after)
    assert "every usage record has its charge" in server.cli("db", "verify")
