"""The usage spool (issue #12, item 12) on a real SQLite file and a real PostgreSQL database: a settlement the
database refuses is kept on disk and recorded once the database takes it again, exactly once; and the ledger's
completeness check finds records and charges that do not pair."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from openglm.accounts import ledger
from openglm.accounts.auth import Principal
from openglm.accounts.limits import MemoryLimiter
from openglm.accounts.metering import Meter
from openglm.accounts.money import to_nano
from openglm.accounts.recording import UsageEntry
from openglm.accounts.reservations import standing as reservations_standing
from openglm.accounts.sealing import SecretBox
from openglm.accounts.spool import UsageSpool
from openglm.accounts.store import AccountStore
from openglm.catalog import ModelSpec, Prices
from openglm.serving.usage import UsageBound, new_usage_id
from openglm.store.db import Database
from openglm.store.models import UsageRecord

PRICED = ModelSpec(id="priced", source="-", prices=Prices(input=Decimal("1"), output=Decimal("1")))
BOUND = UsageBound(prompt_tokens=100, completion_tokens=100)
REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_usage() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$",
        "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION refuse_usage()",
    ],
}
ALLOW = {"sqlite": ["DROP TRIGGER refuse_usage"], "postgresql": ["DROP TRIGGER refuse_usage ON usage_records"]}


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(bytes(range(32))))


@pytest.fixture
def spool(tmp_path: Path) -> UsageSpool:
    return UsageSpool(tmp_path / "data" / "unrecorded-usage.jsonl")


async def execute(database: Database, statements: list[str]) -> None:
    async with database.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def balance(store: AccountStore, account_id: str) -> int:
    return (await store.account_view(account_id)).balance


def entry(account_id: str, usage_id: str, cost: int = 5) -> UsageEntry:
    now = datetime.now(UTC)
    return UsageEntry(
        usage_id, None, account_id, None, "priced", "chat.completions", 3, 2, 0, cost, "succeeded", now, now
    )


async def test_a_refused_settlement_is_spooled_and_replayed_once(
    database: Database, store: AccountStore, spool: UsageSpool
) -> None:
    account = await store.create_account("acme", grant=to_nano(10))
    key, _ = await store.create_key(account.id)
    meter = Meter(database, MemoryLimiter(), spool=spool)
    await execute(database, REFUSE[database.dialect])
    call = await meter.admit(Principal(account.id, key.id), PRICED, "chat.completions", bound=BOUND)
    call.bind(new_usage_id("chatcmpl"), None)
    call.tally.prompt_tokens, call.tally.completion_tokens = 40, 60
    await call.settle("succeeded")  # delivered; the database refuses the record

    assert meter.unrecorded_count() == spool.pending() == 1
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    assert json.loads(spool.path.read_text())["id"] == call.usage_id
    assert await balance(store, account.id) == to_nano(10)  # not charged yet...
    assert (await spool.replay(database)).kept == 1  # ...and not while the database still refuses

    await execute(database, ALLOW[database.dialect])
    replayed = await spool.replay(database)
    assert (replayed.recorded, replayed.present, replayed.kept) == (1, 0, 0)
    assert await balance(store, account.id) == to_nano(10) - to_nano("0.1")  # 100 tokens at 1 CNY / 1K
    assert spool.pending() == 0 and meter.unrecorded_count() == 0
    assert (await spool.replay(database)).recorded == 0  # nothing twice
    async with database.read() as session:
        assert await ledger.gaps(session) == []
        assert await ledger.verify(session) == []


async def test_replay_drops_what_is_already_recorded_and_keeps_conflicts(
    database: Database, store: AccountStore, spool: UsageSpool
) -> None:
    account = await store.create_account("acme", grant=to_nano(10))
    first = entry(account.id, "chatcmpl-a")
    spool.append(first)
    spool.append(first)  # an attempt that committed, then reported an error, then was spooled again
    spool.append(entry(account.id, "chatcmpl-b"))
    assert (await spool.replay(database)).recorded == 2
    spool.append(first)
    spool.append(entry(account.id, "chatcmpl-b", cost=999))  # another record of the same id: an operator's call
    spool.path.open("a").write("{not json\n")
    replayed = await spool.replay(database)
    assert (replayed.recorded, replayed.present, replayed.kept) == (0, 1, 2)
    assert spool.pending() == 2
    assert await balance(store, account.id) == to_nano(10) - 10


async def test_gaps_finds_records_and_charges_that_do_not_pair(database: Database, store: AccountStore) -> None:
    account = await store.create_account("acme", grant=to_nano(10))
    async with database.session() as session:
        assert await ledger.gaps(session) == []
        now = datetime.now(UTC)
        session.add(
            UsageRecord(
                id="chatcmpl-lonely",
                account_id=account.id,
                model="priced",
                endpoint="chat.completions",
                cost=7,
                status="succeeded",
                started_at=now,
                created_at=now,
            )
        )
        await session.flush()
        await ledger.append(session, account.id, "charge", -3)  # a charge no record explains
    async with database.read() as session:
        found = await ledger.gaps(session)
    assert sorted(g.problem for g in found) == ["charge without a usage record", "usage record without its charge"]


async def test_a_value_the_database_cannot_hold_is_spooled_at_once(
    database: Database, store: AccountStore, spool: UsageSpool
) -> None:
    """A request id longer than ``usage_records.request_id`` (the schemas refuse one; a caller that bypasses them,
    or a column narrowed later, must still not lose the charge): PostgreSQL raises DataError, which no retry can
    fix, so the entry goes to the spool without waiting through the retries."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    account = await store.create_account("acme", grant=to_nano(10))
    key, _ = await store.create_key(account.id)
    meter = Meter(database, MemoryLimiter(), spool=spool)
    call = await meter.admit(Principal(account.id, key.id), PRICED, "chat.completions", bound=BOUND)
    call.bind(new_usage_id("chatcmpl"), "r" * 129)
    call.tally.prompt_tokens, call.tally.completion_tokens = 40, 60
    started = time.monotonic()
    await call.settle("succeeded")
    assert time.monotonic() - started < 1.0  # the retries would have waited 1.4 s
    assert spool.pending() == 1 and meter.unrecorded_count() == 1
    assert json.loads(spool.path.read_text())["request_id"] == "r" * 129
    assert (await reservations_standing(database, account.id)).reserved == 0  # the hold was given back
