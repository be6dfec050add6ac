"""Scale-out is configuration: two gateway replicas on one PostgreSQL and one Redis share keys, balances and limits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..databases import postgres_database
from .conftest import MODEL
from .server import RunningServer

REDIS_URL = "redis://127.0.0.1:6379/0"
NO_END = {"0": -100, "2": -100}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer]]:
    with postgres_database() as url:
        env = {
            "OPENGLM_AUTH": "on",
            "OPENGLM_DATABASE_URL": url,
            "OPENGLM_REDIS_URL": REDIS_URL,
            "OPENGLM_SECRET_KEY": secrets.token_hex(16),  # shared, so either replica can open any key
        }
        logs = tmp_path_factory.mktemp("replicas")
        first = RunningServer(log=logs / "a.log", env=env)
        try:
            second = RunningServer(log=logs / "b.log", env=env)
        except BaseException:
            first.stop()
            raise
        first.cli("accounts", "create", "shared-co", "--grant", "10")
        yield first, second
        second.stop()
        first.stop()


def chat(server: RunningServer, key: str, **extra: object) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **extra}
    return httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_a_key_made_on_one_replica_works_on_the_other(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    key = a.cli("keys", "create", "--account", "shared-co").strip()
    assert chat(a, key).status_code == 200
    assert chat(b, key).status_code == 200
    usage = httpx.get(f"{a.url}/v1/account/usage", params={"by": "key"}, headers={"Authorization": key}).json()
    assert usage["data"][0]["requests"] == 2  # both replicas wrote to the one ledger


def test_concurrency_limit_is_shared_through_redis(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    key = a.cli("keys", "create", "--account", "shared-co", "--concurrency", "1").strip()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 400, "stream": True}
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{a.url}/v1/chat/completions", json={**body, "logit_bias": NO_END}, headers={"Authorization": key}
        ) as streaming,
    ):
        lines = streaming.iter_lines()
        assert next(lines).startswith("data: ")
        refused = chat(b, key)  # the slot is held on replica a
        assert (refused.status_code, refused.json()["error"]["code"]) == (429, "1302")


def test_requests_per_minute_are_counted_across_replicas(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    key = a.cli("keys", "create", "--account", "shared-co", "--rpm", "3").strip()
    assert [chat(server, key).status_code for server in (a, b, a)] == [200, 200, 200]
    refused = chat(b, key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "1303")


def test_limits_live_in_redis(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, _ = replicas
    assert "per-key limits: Redis" in Path(a.log_path).read_text()
