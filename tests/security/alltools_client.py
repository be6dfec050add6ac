"""Driving code runs through the real server's All Tools endpoint, as a client does, for the sandbox's security
tests: a scripted model calls ``python`` with the attack's code, round after round."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .conftest import RunningServer, hermes_call


def scripted_code_agent(agent: str, code: str, *, max_rounds: int = 2) -> str:
    """Catalog entries (TOML) for an agent whose model calls ``python(code)`` in every round: ``max_rounds - 1``
    runs of ``code`` per request (the last round's call is not run)."""
    return f"""
[[models]]
id = "{agent}-model"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
context_length = 131072
[[models.options.script]]
when = ""
reply = {hermes_call("python", {"code": code})}

[[agents]]
id = "{agent}"
model = "{agent}-model"
max_rounds = {max_rounds}
"""


def run_agent(
    server: RunningServer, key: str, agent: str, conversation: str, timeout: float = 300
) -> list[dict[str, Any]]:
    """One streamed request; the code interpreter's outputs of each round, in order."""
    body = {
        "model": agent,
        "stream": True,
        "conversation_id": conversation,
        "messages": [{"role": "user", "content": "go"}],
        "tools": [{"type": "code_interpreter"}],
    }
    results = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{server.url}/api/paas/v4/chat/completions", json=body, headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            delta = chunk["choices"][0]["delta"]
            if delta.get("role") == "tool":
                results.append(delta["tool_calls"][0]["code_interpreter"])
    return results


def logs_of(result: dict[str, Any]) -> str:
    return "".join(o.get("logs", "") for o in result["outputs"] if o["type"] == "logs")


def files_of(result: dict[str, Any]) -> list[str]:
    return [o["file"] for o in result["outputs"] if o["type"] == "file"]
