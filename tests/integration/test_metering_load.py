"""Load on the metering path: 200 concurrent streams over 10 keys, a fifth of the clients hanging up mid-stream.

Afterwards the ledger must match the usage records exactly: one record per response id the clients saw, one
charge per record for the same amount, nothing lost or doubled, no 5xx. Run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ..databases import database_url
from .conftest import MODEL
from .server import RunningServer

CLIENTS = 100  # ten keys, twenty hang-ups mid-stream: the load at half the time of 200 (the suite's 25-minute budget)
KEYS = 10
HANG_UP_EVERY = 5  # every fifth client disconnects after a few chunks: 20%
MAX_TOKENS = 24
NO_END = {"0": -100, "2": -100}  # replies run to max_tokens, so a hang-up always lands mid-stream


@dataclass
class Outcome:
    status: int
    response_id: str | None
    hung_up: bool
    usage: dict[str, int] | None
    chunks: int


@pytest.fixture(params=["sqlite", "postgresql"])
def loaded_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    with database_url(request.param, tmp_path) as url:
        server = RunningServer(
            log=tmp_path / "server.log",
            env={
                "OPENGLM_AUTH": "on",
                "OPENGLM_DATABASE_URL": url,
                "OPENGLM_KEY_CONCURRENCY": "0",  # this test is about accounting, not about limits
                "OPENGLM_KEY_RPM": "0",
            },
        )
        try:
            yield server, url
        finally:
            server.stop()


def make_keys(server: RunningServer) -> list[str]:
    admin_key = server.cli("keys", "create", "--admin").strip()
    admin = httpx.Client(base_url=f"{server.url}/admin", headers={"Authorization": f"Bearer {admin_key}"})
    keys = []
    for account in ("load-a", "load-b"):
        assert admin.post("/accounts", json={"name": account, "grant": "100"}).status_code == 201
        for i in range(KEYS // 2):
            keys.append(admin.post(f"/accounts/{account}/keys", json={"name": f"k{i}"}).json()["key"])
    return keys


async def one_client(client: httpx.AsyncClient, key: str, index: int) -> Outcome:
    hang_up = index % HANG_UP_EVERY == 0
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Tell story number {index}."}],
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "logit_bias": NO_END,
    }
    response_id, usage, chunks = None, None, 0
    async with client.stream(
        "POST", "/api/paas/v4/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return Outcome(response.status_code, None, hang_up, None, 0)
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            assert "error" not in event, event
            response_id = event["id"]
            usage = event.get("usage") or usage
            chunks += 1
            if hang_up and chunks == 3:
                break  # leaving the block closes the connection mid-stream
    return Outcome(200, response_id, hang_up, usage, chunks)


async def run_load(server: RunningServer, keys: list[str]) -> list[Outcome]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits) as client:
        return await asyncio.gather(*(one_client(client, keys[i % KEYS], i) for i in range(CLIENTS)))


def wait_for_records(engine, count: int, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Hung-up streams settle when the server notices the disconnect, a moment after the client left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(text("SELECT count(*) FROM usage_records")) >= count:
                return
        time.sleep(0.2)


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.mark.slow
def test_ledger_matches_usage_under_load(loaded_server: tuple[RunningServer, str]) -> None:
    server, url = loaded_server
    keys = make_keys(server)
    outcomes = asyncio.run(run_load(server, keys))

    assert [o.status for o in outcomes] == [200] * CLIENTS  # no 5xx, and no refusals either
    seen = [o.response_id for o in outcomes]
    assert None not in seen and len(set(seen)) == CLIENTS

    engine = create_engine(sync_url(url))
    try:
        wait_for_records(engine, CLIENTS)
        with engine.connect() as conn:
            records = {
                row.id: row
                for row in conn.execute(
                    text("SELECT id, status, prompt_tokens, completion_tokens, cost FROM usage_records")
                )
            }
            charges = list(conn.execute(text("SELECT usage_id, amount FROM ledger_entries WHERE kind = 'charge'")))
            grants = conn.scalar(text("SELECT sum(amount) FROM ledger_entries WHERE kind = 'grant'"))
            balances = conn.scalar(text("SELECT sum(amount) FROM ledger_entries"))
            kept = conn.scalar(text("SELECT sum(balance) FROM account_balances"))
            drifted = conn.scalar(
                text(
                    "SELECT count(*) FROM account_balances b WHERE b.balance != "
                    "(SELECT COALESCE(SUM(l.amount), 0) FROM ledger_entries l WHERE l.account_id = b.account_id)"
                )
            )
    finally:
        engine.dispose()

    assert set(records) == set(seen)  # one record per response the clients saw, none extra
    assert len(charges) == CLIENTS and {usage_id for usage_id, _ in charges} == set(seen)
    for usage_id, amount in charges:
        assert amount == -records[usage_id].cost
    assert sum(-amount for _, amount in charges) == sum(r.cost for r in records.values()) > 0
    assert balances == grants - sum(r.cost for r in records.values())
    assert kept == balances and drifted == 0  # the balances the admission check reads agree with the ledger

    for outcome in outcomes:
        record = records[outcome.response_id]
        if outcome.hung_up:
            assert record.status == "cancelled"
            # Charged for what was delivered: at least the chunks the client read, at most what was generated.
            assert outcome.chunks <= record.completion_tokens <= MAX_TOKENS
        else:
            assert record.status == "succeeded"
            assert outcome.usage is not None
            assert (record.prompt_tokens, record.completion_tokens) == (
                outcome.usage["prompt_tokens"],
                outcome.usage["completion_tokens"],
            )

    hung_up = [records[o.response_id].completion_tokens for o in outcomes if o.hung_up]
    assert sum(hung_up) < len(hung_up) * MAX_TOKENS  # hang-ups were not charged for whole replies
