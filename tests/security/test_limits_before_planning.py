"""A key over its limits is refused before its request is planned.

Chat and completions planned a request (the template rendered, a grammar compiled) before the key's limits were
checked, so a key at its requests-per-minute limit could still make the server do that work on every request.
Now the limits (and the balance) come first and only the reservation, which needs the plan's bound, comes after.
Observable from outside: a request the planner would refuse (400 1214) is refused by the limiter instead (429
1303) once the key is at its limit — before the fix it was planned, and refused as a bad request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, error_code, new_key

CATALOG = """
[[models]]
id = "default"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = ""
reply = "Hello."
"""
MESSAGES = [{"role": "user", "content": "hi"}]
CALLS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # (path, a good request, one the planner refuses)
    "chat": (
        "/v1/chat/completions",
        {"model": "default", "messages": MESSAGES},
        {"model": "default", "messages": MESSAGES, "tool_choice": "required"},  # tool_choice without tools
    ),
    "completions": (
        "/v1/completions",
        {"model": "default", "prompt": "hi"},
        {"model": "default", "prompt": "hi", "grammar": "root ::= undefined-rule"},  # a grammar that cannot compile
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("limits-first")
    (tmp / "models.toml").write_text(CATALOG, encoding="utf-8")
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env={"OPENGLM_AUTH": "on"})
    yield running
    running.stop()


@pytest.mark.parametrize("kind", list(CALLS))
def test_a_key_at_its_rate_limit_is_refused_before_planning(server: RunningServer, kind: str) -> None:
    path, good, bad = CALLS[kind]
    fresh = {"Authorization": f"Bearer {new_key(server, f'planner-{kind}', '--rpm', '5')}"}
    refused = httpx.post(f"{server.url}{path}", json=bad, headers=fresh, timeout=60)
    assert refused.status_code == 400 and error_code(refused) == "1214", refused.text  # the planner's refusal

    limited = {"Authorization": f"Bearer {new_key(server, f'limited-{kind}', '--rpm', '1')}"}
    assert httpx.post(f"{server.url}{path}", json=good, headers=limited, timeout=60).status_code == 200
    over = httpx.post(f"{server.url}{path}", json=bad, headers=limited, timeout=60)
    assert over.status_code == 429 and error_code(over) == "1303", over.text  # before: 400 1214, after planning
