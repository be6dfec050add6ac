"""Issue #12, item 13: one request must not hold the engine (or the event loop) with unbounded work.

The attack: ``/v1/completions`` with 1,000 prompts × ``n`` 16 held the engine for 260 s and ``/health`` for 7 s.
Now a request asks for at most 16 generations (prompts × n, chat's bound on ``n``), refused with 400 (1214)
before anything is reserved or submitted, and an admitted request reserves the cost of all its generations up
front, so a second request cannot spend what the first may still cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from .conftest import RunningServer, error_code, new_key

PRICE = Decimal("1")  # CNY per 1K tokens
CATALOG = f"""
[[models]]
id = "priced"
engine = "scripted"
source = "-"
template = "chatml"
context_length = 4096
[models.prices]
input = {PRICE}
output = {PRICE}
[models.options]
pace = 0.02
[[models.options.script]]
when = ""
reply = "{"word " * 100}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("completions")
    (tmp / "models.toml").write_text(CATALOG, encoding="utf-8")
    env = {"OPENGLM_AUTH": "on", "OPENGLM_KEY_CONCURRENCY": "0", "OPENGLM_KEY_RPM": "0"}
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env=env)
    yield running
    running.stop()


async def health_while(server: RunningServer, request: httpx.Request) -> tuple[httpx.Response, float]:
    """Send ``request`` and probe /health meanwhile; the answer and the slowest probe (seconds)."""
    async with httpx.AsyncClient(timeout=30) as client:
        sending = asyncio.create_task(client.send(request))
        slowest = 0.0
        while not sending.done():
            started = time.monotonic()
            assert (await client.get(f"{server.url}/health")).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.02)
        return await sending, slowest


def test_a_thousand_prompts_times_sixteen_is_refused_up_front(server: RunningServer) -> None:
    key = new_key(server, "batcher")
    body = {"model": "priced", "prompt": [f"Story {i}:" for i in range(1000)], "n": 16, "max_tokens": 64}
    request = httpx.Request(
        "POST", f"{server.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    answer, slowest = asyncio.run(health_while(server, request))
    assert (answer.status_code, error_code(answer)) == (400, "1214")
    assert answer.json()["error"]["message"] == "prompt: List should have at most 16 items after validation, not 1000"
    assert slowest < 1.0
    allowed = httpx.post(
        f"{server.url}/v1/completions",
        json={**body, "prompt": ["Once", "upon", "a", "time"], "n": 4, "max_tokens": 2},
        headers={"Authorization": key},
        timeout=30,
    )
    assert allowed.status_code == 200 and len(allowed.json()["choices"]) == 16


def test_a_million_prompts_are_refused_at_the_schema(server: RunningServer) -> None:
    """5 MB of JSON (under the 8 MiB cap): the list is refused at its 17th item by the schema, not built into a
    million-prompt request that the service then counts (the message named "1000000 prompts" before)."""
    key = new_key(server, f"millions-{time.monotonic_ns()}")
    body = {"model": "priced", "prompt": ["x"] * 1_000_000, "stop": "\n"}
    request = httpx.Request(
        "POST", f"{server.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    started = time.monotonic()
    answer, slowest = asyncio.run(health_while(server, request))
    assert (answer.status_code, error_code(answer)) == (400, "1214")
    assert answer.json()["error"]["message"].startswith("prompt: List should have at most 16 items")
    assert time.monotonic() - started < 5 and slowest < 1.0
    stops = {"model": "priced", "prompt": "Once", "max_tokens": 2, "stop": ["."] * 100_000}
    refused = httpx.post(f"{server.url}/v1/completions", json=stops, headers={"Authorization": key}, timeout=30)
    assert (refused.status_code, error_code(refused)) == (400, "1214")
    assert refused.json()["error"]["message"].startswith("stop: List should have at most 16 items")


def test_the_whole_request_is_reserved_before_it_runs(server: RunningServer) -> None:
    """16 generations of 60 tokens at 1 CNY/1K may cost ~1.04 CNY: all of it is held while the request runs, so
    with 1 CNY a second request is refused until the first settles (and is charged what it used)."""
    key = new_key(server, f"reserver-{time.monotonic_ns()}", grant="1")
    body = {"model": "priced", "prompt": ["Once", "upon", "a", "time"], "n": 4, "max_tokens": 60, "stream": True}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{server.url}/v1/completions", json=body, headers={"Authorization": key}) as first,
    ):
        assert first.status_code == 200
        lines = first.iter_lines()
        next(lines)
        second = client.post(
            f"{server.url}/v1/completions", json={**body, "stream": False}, headers={"Authorization": key}
        )
        assert (second.status_code, error_code(second)) == (429, "1113")
        assert "held by calls in flight" in second.json()["error"]["message"]
        assert "data: [DONE]" in list(lines)
    balance = Decimal(httpx.get(f"{server.url}/v1/account", headers={"Authorization": key}).json()["balance"])
    assert Decimal(0) < balance < Decimal(1)  # charged what the 16 completions used, not the reservation
