"""Issue #12, item 3: a burst of concurrent calls must not spend a balance many times over.

The attack: an account with about 1 CNY left fires 100 calls at once, on one key and spread over 8 keys, at a
priced model (priced so that one call costs about a sixth of the balance, and every call runs to ``max_tokens``). Before reservations every call passed the balance check before any was charged and the
balance ended far below zero. Now each admission reserves the call's maximum cost against the balance, atomically,
so the balance ends above minus one call's cost; refused calls get 429 (1113); ``openglm db verify`` holds.

Run on SQLite, on PostgreSQL, and across two replicas (one PostgreSQL, one Redis) that share the burst.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.databases import database_url

from .conftest import RunningServer

PRICE = Decimal("2")  # CNY per 1K tokens, input and output
MAX_TOKENS = 64
CALLS = 100
BALANCE = "1"
REDIS_URL = "redis://127.0.0.1:6379/0"
# A scripted model (metering does not care where tokens come from), paced so that the calls of a burst overlap
# the way real generations do, and with a reply longer than max_tokens.
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
reply = "{"one two three four five six seven eight nine ten " * 8}"
"""
# Only the balance may refuse: no per-key concurrency or rate limit to hide behind.
ENV = {"OPENGLM_AUTH": "on", "OPENGLM_KEY_CONCURRENCY": "0", "OPENGLM_KEY_RPM": "0"}


@dataclass
class Burst:
    statuses: list[int]
    codes: list[str]
    prompt_tokens: list[int]

    @property
    def admitted(self) -> int:
        return self.statuses.count(200)


def start(tmp: Path, name: str, env: dict[str, str]) -> RunningServer:
    catalog = tmp / "models.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    return RunningServer(models_file=catalog, log=tmp / f"{name}.log", env={**ENV, **env})


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "replicas"])
def gateways(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    """One server on SQLite, one on PostgreSQL, or two replicas on one PostgreSQL and one Redis."""
    tmp = tmp_path_factory.mktemp(f"burst-{request.param}")
    kind = "sqlite" if request.param == "sqlite" else "postgresql"
    with database_url(kind, tmp) as url:
        env = {"OPENGLM_DATABASE_URL": url}
        if request.param != "replicas":
            servers = [start(tmp, "server", env)]
        else:
            env |= {"OPENGLM_REDIS_URL": REDIS_URL, "OPENGLM_SECRET_KEY": secrets.token_hex(16)}
            servers = [start(tmp, "a", env)]
            try:
                servers.append(start(tmp, "b", env))
            except BaseException:
                servers[0].stop()
                raise
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


def account_with_keys(server: RunningServer, keys: int) -> tuple[httpx.Client, str, list[str]]:
    """A new account with BALANCE CNY and ``keys`` keys, made through the admin API."""
    admin_key = server.cli("keys", "create", "--admin").strip()
    admin = httpx.Client(base_url=f"{server.url}/admin", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
    name = f"burst-{secrets.token_hex(4)}"
    created = admin.post("/accounts", json={"name": name, "grant": BALANCE})
    assert created.status_code == 201, created.text
    made = [admin.post(f"/accounts/{name}/keys", json={"name": f"k{i}"}) for i in range(keys)]
    return admin, name, [m.json()["key"] for m in made]


async def fire(servers: list[RunningServer], keys: list[str]) -> Burst:
    body = {
        "model": "priced",
        "messages": [{"role": "user", "content": "Count to one hundred."}],
        "max_tokens": MAX_TOKENS,
    }
    limits = httpx.Limits(max_connections=CALLS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            server = servers[i % len(servers)]
            headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
            return await client.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)

        responses = await asyncio.gather(*(one(i) for i in range(CALLS)))
    return Burst(
        statuses=[r.status_code for r in responses],
        codes=[str(r.json()["error"]["code"]) for r in responses if r.status_code != 200],
        prompt_tokens=[r.json()["usage"]["prompt_tokens"] for r in responses if r.status_code == 200],
    )


def balance(admin: httpx.Client, account: str) -> Decimal:
    return Decimal(admin.get(f"/accounts/{account}").json()["balance"])


@pytest.mark.parametrize("keys", [1, 8], ids=["one-key", "eight-keys"])
def test_a_burst_cannot_spend_the_balance_many_times(gateways: list[RunningServer], keys: int) -> None:
    admin, account, made = account_with_keys(gateways[0], keys)
    burst = asyncio.run(fire(gateways, made))

    # The most one call can cost: its prompt and every token it may generate, at the model's price.
    one_call = (max(burst.prompt_tokens) + MAX_TOKENS) * PRICE / 1000
    left = balance(admin, account)
    assert left > -one_call, f"{burst.admitted} calls admitted; balance {left} CNY, one call costs {one_call} CNY"
    assert set(burst.statuses) <= {200, 429}, burst.statuses
    assert set(burst.codes) == {"1113"}  # every refusal is the balance's
    assert 1 <= burst.admitted <= 10, burst.statuses
    assert "every balance equals" in gateways[0].cli("db", "verify")
