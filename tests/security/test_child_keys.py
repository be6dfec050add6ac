"""Issue #12, item 4: limits must not escape through keys made from keys.

The attack: a key whose daily tokens are spent (1304) mints a new key from the console (``POST /account/keys``
with that key) and the new key is served. Now a key made with a key records it as its parent, and admission
checks the limits of every key up the chain against what the whole family used: daily tokens, requests per
minute and concurrency. A key made from a revoked key stops too. On the in-process limiter and on Redis.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, error_code

REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_TOKENS = 16
# Free scripted models (limits are about tokens and requests, not money); "slow" keeps a stream open a while.
CATALOG = "".join(
    f"""
[[models]]
id = "{name}"
engine = "scripted"
source = "-"
template = "chatml"
[models.options]
pace = {pace}
[[models.options.script]]
when = ""
reply = "{"tick tock " * 40}"
"""
    for name, pace in (("scripted", 0), ("slow", 0.05))
)


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server on the in-process limiter, or on Redis."""
    tmp = tmp_path_factory.mktemp(f"child-keys-{request.param}")
    catalog = tmp / "models.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    env = {"OPENGLM_AUTH": "on", "OPENGLM_KEY_CONCURRENCY": "0", "OPENGLM_KEY_RPM": "0"}
    if request.param == "redis":
        env |= {"OPENGLM_REDIS_URL": REDIS_URL, "OPENGLM_SECRET_KEY": secrets.token_hex(16)}
    running = RunningServer(models_file=catalog, log=tmp / "server.log", env=env)
    yield running
    running.stop()


def chat(server: RunningServer, key: str) -> httpx.Response:
    body = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": MAX_TOKENS}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": key}, timeout=60)


def mint(server: RunningServer, key: str) -> str:
    """A new key made through the console with ``key``, as the probe did."""
    made = httpx.post(f"{server.url}/v1/account/keys", json={"name": "child"}, headers={"Authorization": key})
    assert made.status_code == 200, made.text
    return str(made.json()["key"])


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    key = server.cli("keys", "create", "--admin").strip()
    with httpx.Client(base_url=f"{server.url}/admin", headers={"Authorization": key}, timeout=30) as client:
        yield client


def fresh_key(admin: httpx.Client, **limits: Any) -> str:
    """A key of a new account, made by an operator (the admin API), with ``limits``."""
    account = f"family-{secrets.token_hex(3)}"
    assert admin.post("/accounts", json={"name": account}).status_code == 201
    made = admin.post(f"/accounts/{account}/keys", json={"limits": limits})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def spend(server: RunningServer, key: str) -> None:
    """Calls until the key's daily tokens are spent (each call uses ~28 of 40)."""
    assert chat(server, key).status_code == 200
    assert chat(server, key).status_code == 200
    assert error_code(chat(server, key)) == "1304"


def test_a_spent_key_cannot_mint_a_fresh_daily_allowance(server: RunningServer, admin: httpx.Client) -> None:
    parent = fresh_key(admin, daily_tokens=40)
    spend(server, parent)
    child = mint(server, parent)
    refused = chat(server, child)
    assert (refused.status_code, error_code(refused)) == (429, "1304")
    assert parent.split(".")[0] in refused.json()["error"]["message"]  # names the key whose quota it is
    grandchild = mint(server, child)
    assert error_code(chat(server, grandchild)) == "1304"


def test_what_a_child_uses_counts_against_its_parent(server: RunningServer, admin: httpx.Client) -> None:
    parent = fresh_key(admin, daily_tokens=40)
    child = mint(server, parent)
    spend(server, child)
    assert error_code(chat(server, parent)) == "1304"


def test_a_child_shares_its_parents_rate(server: RunningServer, admin: httpx.Client) -> None:
    parent = fresh_key(admin, rpm=2)
    assert [chat(server, parent).status_code for _ in range(2)] == [200, 200]
    refused = chat(server, mint(server, parent))
    assert (refused.status_code, error_code(refused)) == (429, "1303")
    assert float(refused.headers["Retry-After"]) > 0


def test_a_child_shares_its_parents_concurrency(server: RunningServer, admin: httpx.Client) -> None:
    parent = fresh_key(admin, concurrency=1)
    child = mint(server, parent)
    body = {"model": "slow", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 80, "stream": True}
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": parent}
        ) as streaming,
    ):
        lines = streaming.iter_lines()
        assert next(lines).startswith("data: ")
        refused = chat(server, child)  # the parent's one slot is taken
        assert (refused.status_code, error_code(refused)) == (429, "1302")


def test_revoking_a_key_stops_the_keys_made_from_it(server: RunningServer, admin: httpx.Client) -> None:
    parent = fresh_key(admin)
    child = mint(server, parent)
    assert chat(server, child).status_code == 200
    assert admin.patch(f"/keys/{parent.split('.')[0]}", json={"status": "disabled"}).status_code == 200
    refused = chat(server, child)
    assert (refused.status_code, error_code(refused)) == (401, "1004")
