"""Admission, settlement and usage reports, on a real SQLite file and a real PostgreSQL database.

Calls are admitted against an in-process limiter on a fixed clock; engines are stood in for by async generators
and coroutines that update ``call.tally`` the way the response code does.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from openglm.accounts import ledger
from openglm.accounts.auth import Principal
from openglm.accounts.limits import KeyLimits, Lease, MemoryLimiter, RedisLimiter
from openglm.accounts.metering import Attribution, Meter, MeteredCall, PriceBook, metered_result, metered_stream
from openglm.accounts.money import to_nano
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import AccountStore
from openglm.accounts.usage import UsageRow, usage_summary
from openglm.catalog import ModelSpec, Prices
from openglm.errors import (
    ConcurrencyLimitError,
    DailyQuotaError,
    EngineError,
    InsufficientBalanceError,
    ServiceUnavailableError,
)
from openglm.serving.usage import UsageBound
from openglm.store.db import Database
from openglm.store.models import LedgerEntry, UsageRecord

NOW = float(calendar.timegm((2025, 3, 1, 12, 0, 0)))
CHAT = "chat.completions"
PRICED = ModelSpec(id="priced-chat", source="x.gguf", prices=Prices(input=Decimal("0.1"), output=Decimal("0.2")))
OTHER_PRICED = ModelSpec(id="glm-4", source="y.gguf")  # seed price: 0.1 / 0.1
FREE = ModelSpec(id="local-free", source="z.gguf")
IMAGES = ModelSpec(id="cogview-3", source="w.gguf")  # seed price: 0.25 per image
BOUND = UsageBound(prompt_tokens=1000, completion_tokens=1000, images=2)  # 0.3 CNY of PRICED: what calls reserve


@dataclass(frozen=True)
class Tenant:
    account_id: str
    key_id: str

    def principal(self, limits: KeyLimits | None = None) -> Principal:
        return Principal(account_id=self.account_id, key_id=self.key_id, limits=limits or KeyLimits())


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(bytes(range(32))))


@pytest.fixture
def limiter() -> MemoryLimiter:
    return MemoryLimiter(clock=lambda: NOW)


@pytest.fixture
def meter(database: Database, limiter: MemoryLimiter) -> Meter:
    return Meter(database, limiter)


async def new_tenant(store: AccountStore, name: str = "acme", balance: int = to_nano(10)) -> Tenant:
    account = await store.create_account(name, grant=balance)
    key, _ = await store.create_key(account.id)
    return Tenant(account.id, key.id)


@pytest.fixture
async def tenant(store: AccountStore) -> Tenant:
    return await new_tenant(store)


async def usage_records(database: Database) -> list[UsageRecord]:
    async with database.session() as session:
        return list(await session.scalars(select(UsageRecord).order_by(UsageRecord.created_at, UsageRecord.id)))


async def charges(database: Database) -> list[LedgerEntry]:
    async with database.session() as session:
        return list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "charge")))


async def balance(store: AccountStore, tenant: Tenant) -> int:
    return (await store.account_view(tenant.account_id)).balance


async def admitted(
    meter: Meter, principal: Principal, spec: ModelSpec = PRICED, usage_id: str = "chatcmpl-1"
) -> MeteredCall:
    call = await meter.admit(principal, spec, CHAT, bound=BOUND)
    call.bind(usage_id, f"req-{usage_id}")
    return call


async def engine(call: MeteredCall, pieces: int, *, fail: bool = False) -> AsyncIterator[str]:
    """Stands in for an engine's stream: counts the prompt, then one completion token per chunk."""
    call.tally.prompt_tokens = 1000
    for n in range(pieces):
        call.tally.completion_tokens += 1
        yield f"piece {n}"
    if fail:
        raise EngineError("the engine fell over")


# --- admission -------------------------------------------------------------------------


async def test_admit_with_balance_takes_a_lease(meter: Meter, limiter: MemoryLimiter, tenant: Tenant) -> None:
    call = await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)
    assert call.lease is not None
    assert call.model == PRICED.id
    assert call.endpoint == CHAT
    assert call.prices == PriceBook(to_nano("0.1"), to_nano("0.2"), 0)
    assert await limiter.in_flight(tenant.key_id) == 1


@pytest.mark.parametrize("adjustment", [0, -to_nano(1), -1])
async def test_no_balance_is_refused_for_priced_models(
    meter: Meter, limiter: MemoryLimiter, store: AccountStore, adjustment: int
) -> None:
    tenant = await new_tenant(store, balance=0)
    if adjustment:
        await store.add_entry(tenant.account_id, "adjustment", adjustment)
    with pytest.raises(InsufficientBalanceError) as caught:
        await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)
    err = caught.value
    assert (err.code, err.status) == ("1113", 429)
    assert err.headers() == {"x-should-retry": "false"}
    assert "您的账户已欠费" in err.message
    assert await limiter.in_flight(tenant.key_id) == 0  # a refused call holds nothing


async def test_balance_spent_to_exactly_zero_is_refused(meter: Meter, store: AccountStore) -> None:
    tenant = await new_tenant(store, balance=to_nano("0.2"))
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 500  # 0.1 + 0.1
    await call.settle("succeeded")
    assert await balance(store, tenant) == 0
    with pytest.raises(InsufficientBalanceError):
        await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)


async def test_free_models_need_no_balance(meter: Meter, limiter: MemoryLimiter, store: AccountStore) -> None:
    tenant = await new_tenant(store, balance=0)
    call = await meter.admit(tenant.principal(), FREE, CHAT, bound=BOUND)
    assert call.prices.free
    assert await limiter.in_flight(tenant.key_id) == 1


async def test_keyless_principal_needs_no_balance_and_takes_no_lease(meter: Meter, store: AccountStore) -> None:
    local = await store.ensure_account("local")
    call = await meter.admit(Principal(account_id=local.id, key_id=None), PRICED, CHAT, bound=BOUND)
    assert call.lease is None


async def test_limiter_limits_apply_at_admission(meter: Meter, tenant: Tenant) -> None:
    principal = tenant.principal(KeyLimits(concurrency=1))
    first = await admitted(meter, principal)
    with pytest.raises(ConcurrencyLimitError):
        await meter.admit(principal, PRICED, CHAT, bound=BOUND)
    await first.settle("succeeded")
    await meter.admit(principal, PRICED, CHAT, bound=BOUND)


# --- settlement ------------------------------------------------------------------------


async def test_settle_writes_one_record_and_one_charge(
    meter: Meter, database: Database, store: AccountStore, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens, call.tally.completion_tokens = 1234, 567
    await call.settle("succeeded")

    cost = PriceBook.of(PRICED.effective_prices()).cost(call.tally)
    assert cost == 123_400_000 + 113_400_000
    [record] = await usage_records(database)
    assert (record.id, record.request_id, record.account_id, record.key_id) == (
        "chatcmpl-1",
        "req-chatcmpl-1",
        tenant.account_id,
        tenant.key_id,
    )
    assert (record.model, record.endpoint, record.status) == (PRICED.id, CHAT, "succeeded")
    assert (record.prompt_tokens, record.completion_tokens, record.images, record.cost) == (1234, 567, 0, cost)
    assert record.started_at <= record.created_at
    [charge] = await charges(database)
    assert (charge.account_id, charge.amount, charge.usage_id, charge.note) == (
        tenant.account_id,
        -cost,
        record.id,
        CHAT,
    )
    assert await balance(store, tenant) == to_nano(10) - cost


@pytest.mark.parametrize("share", [Decimal(0), Decimal("0.3")])
async def test_calls_through_an_agent_are_attributed_and_shared_with_its_creator(
    database: Database, limiter: MemoryLimiter, store: AccountStore, tenant: Tenant, share: Decimal
) -> None:
    meter = Meter(database, limiter, creator_share=share)
    creator = await new_tenant(store, "creator-co", balance=0)
    call = await admitted(meter, tenant.principal(), usage_id="asst-1")
    call.agent = Attribution("a" * 24, creator.account_id)
    call.tally.prompt_tokens, call.tally.completion_tokens = 1001, 333
    await call.settle("succeeded")
    own = await admitted(meter, creator.principal(), spec=FREE, usage_id="asst-2")  # the creator's own call
    own.agent = Attribution("a" * 24, creator.account_id)
    own.tally.prompt_tokens = 5
    await own.settle("succeeded")

    record, mine = await usage_records(database)
    earned = int(Decimal(record.cost) * share)
    assert (record.agent_id, record.agent_owner, record.agent_share) == ("a" * 24, creator.account_id, earned)
    assert (mine.agent_owner, mine.agent_share) == (creator.account_id, 0)
    async with database.session() as session:
        shares = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "share")))
        assert await ledger.verify(session) == []
    if share:
        [entry] = shares
        assert (entry.account_id, entry.amount, entry.usage_id) == (creator.account_id, earned, None)
        assert "asst-1" in entry.note and earned > 0
    else:
        assert shares == []
    assert await balance(store, creator) == earned
    assert await balance(store, tenant) == to_nano(10) - record.cost  # the caller pays the full price


async def test_images_are_charged_per_image(meter: Meter, database: Database, tenant: Tenant) -> None:
    call = await admitted(meter, tenant.principal(), IMAGES, "img-1")
    call.tally.prompt_tokens, call.tally.images = 50, 2
    await call.settle("succeeded")
    [charge] = await charges(database)
    assert charge.amount == -to_nano("0.5")


async def test_free_model_is_recorded_at_zero_cost(meter: Meter, database: Database, tenant: Tenant) -> None:
    call = await admitted(meter, tenant.principal(), FREE)
    call.tally.prompt_tokens, call.tally.completion_tokens = 100, 100
    await call.settle("succeeded")
    [record] = await usage_records(database)
    assert record.cost == 0
    assert [c.amount for c in await charges(database)] == [0]


async def test_settling_twice_writes_once(
    meter: Meter, database: Database, store: AccountStore, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 1000
    await call.settle("succeeded")
    await call.settle("succeeded")
    await call.settle("cancelled")
    await call.settle("failed")
    assert len(await usage_records(database)) == 1
    assert len(await charges(database)) == 1
    assert await balance(store, tenant) == to_nano(10) - to_nano("0.3")


async def test_failed_with_nothing_delivered_writes_nothing(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens = 1000  # the prompt was read, but nothing reached the client
    await call.settle("failed")
    assert await usage_records(database) == []
    assert await charges(database) == []
    assert await limiter.in_flight(tenant.key_id) == 0
    assert await limiter.tokens_today(tenant.key_id) == 0


async def test_failed_after_delivering_is_charged(meter: Meter, database: Database, tenant: Tenant) -> None:
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 10
    await call.settle("failed")
    [record] = await usage_records(database)
    assert record.status == "failed"
    [charge] = await charges(database)
    assert charge.amount == -(to_nano("0.1") + 2_000_000)


async def test_cancelled_with_delivered_tokens_is_charged(meter: Meter, database: Database, tenant: Tenant) -> None:
    call = await admitted(meter, tenant.principal())
    call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 5
    await call.settle("cancelled")
    [record] = await usage_records(database)
    assert (record.status, record.completion_tokens) == ("cancelled", 5)
    assert [c.amount for c in await charges(database)] == [-record.cost]
    assert record.cost == to_nano("0.1") + 1_000_000


async def test_settle_releases_the_lease_and_counts_tokens(
    meter: Meter, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    assert await limiter.in_flight(tenant.key_id) == 1
    call.tally.prompt_tokens, call.tally.completion_tokens = 70, 30
    await call.settle("succeeded")
    assert await limiter.in_flight(tenant.key_id) == 0
    assert await limiter.tokens_today(tenant.key_id) == 100


async def test_daily_quota_counts_settled_tokens(meter: Meter, tenant: Tenant) -> None:
    principal = tenant.principal(KeyLimits(daily_tokens=100))
    call = await admitted(meter, principal)
    call.tally.prompt_tokens, call.tally.completion_tokens = 60, 50
    await call.settle("succeeded")
    with pytest.raises(DailyQuotaError):
        await meter.admit(principal, PRICED, CHAT, bound=BOUND)


async def test_abandon_writes_nothing_and_releases(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    await call.abandon()
    await call.abandon()
    await call.settle("succeeded")  # already done
    assert await usage_records(database) == []
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_guard_abandons_when_submission_fails(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)

    async def submit() -> None:
        raise EngineError("no slot")

    with pytest.raises(EngineError):
        await call.guard(submit())
    assert await limiter.in_flight(tenant.key_id) == 0
    assert await usage_records(database) == []


async def test_guard_passes_the_result_through(meter: Meter, limiter: MemoryLimiter, tenant: Tenant) -> None:
    call = await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)

    async def submit() -> str:
        return "run-1"

    assert await call.guard(submit()) == "run-1"
    assert await limiter.in_flight(tenant.key_id) == 1


async def test_settle_before_bind_is_still_recorded(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    call = await meter.admit(tenant.principal(), PRICED, CHAT, bound=BOUND)
    call.tally.completion_tokens = 3
    with caplog.at_level(logging.ERROR, logger="openglm.accounts.metering"):
        await call.settle("succeeded")
    assert "settled before bind()" in caplog.text  # a bug in the caller, but not a lost charge
    [record] = await usage_records(database)
    assert record.id.startswith("unbound-") and record.completion_tokens == 3
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_keyless_call_is_recorded_without_a_key(meter: Meter, database: Database, store: AccountStore) -> None:
    local = await store.ensure_account("local")
    call = await admitted(meter, Principal(account_id=local.id, key_id=None), FREE)
    call.tally.prompt_tokens, call.tally.completion_tokens = 5, 5
    await call.settle("succeeded")
    [record] = await usage_records(database)
    assert (record.account_id, record.key_id) == (local.id, None)


# --- metered_stream and metered_result -------------------------------------------------------


async def test_stream_run_to_the_end_succeeds(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    received = [chunk async for chunk in metered_stream(call, engine(call, 3))]
    await meter.drain()
    assert received == ["piece 0", "piece 1", "piece 2"]
    [record] = await usage_records(database)
    assert (record.status, record.prompt_tokens, record.completion_tokens) == ("succeeded", 1000, 3)
    assert len(await charges(database)) == 1
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_stream_closed_early_is_cancelled(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    stream = metered_stream(call, engine(call, 10))
    assert await anext(stream) == "piece 0"
    assert await anext(stream) == "piece 1"
    await stream.aclose()
    await meter.drain()
    [record] = await usage_records(database)
    assert (record.status, record.completion_tokens) == ("cancelled", 2)
    [charge] = await charges(database)
    assert charge.amount == -record.cost == -(to_nano("0.1") + 400_000)
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_stream_failing_after_output_is_failed_and_charged(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    received = []
    with pytest.raises(EngineError):
        async for chunk in metered_stream(call, engine(call, 2, fail=True)):
            received.append(chunk)
    await meter.drain()
    assert received == ["piece 0", "piece 1"]
    assert call.tally.completion_tokens > 0
    [record] = await usage_records(database)
    assert (record.status, record.completion_tokens) == ("failed", 2)
    assert [c.amount for c in await charges(database)] == [-record.cost]
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_stream_failing_before_output_writes_nothing(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    with pytest.raises(EngineError):
        async for _ in metered_stream(call, engine(call, 0, fail=True)):
            pass
    await meter.drain()
    assert await usage_records(database) == []
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_result_succeeds(meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant) -> None:
    call = await admitted(meter, tenant.principal())

    async def work() -> str:
        call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 20
        return "done"

    assert await metered_result(call, work()) == "done"
    await meter.drain()
    [record] = await usage_records(database)
    assert (record.status, record.completion_tokens) == ("succeeded", 20)
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_result_failing_before_output_writes_nothing(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())

    async def work() -> str:
        call.tally.prompt_tokens = 1000
        raise EngineError("boom")

    with pytest.raises(EngineError):
        await metered_result(call, work())
    await meter.drain()
    assert await usage_records(database) == []
    assert await limiter.in_flight(tenant.key_id) == 0


async def test_result_cancelled_while_running_is_settled(
    meter: Meter, database: Database, limiter: MemoryLimiter, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    generating = asyncio.Event()

    async def work() -> str:
        call.tally.prompt_tokens, call.tally.completion_tokens = 1000, 7
        generating.set()
        await asyncio.Event().wait()  # never finishes on its own
        return "unreachable"

    task = asyncio.create_task(metered_result(call, work()))
    await generating.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await meter.drain()
    [record] = await usage_records(database)
    assert (record.status, record.completion_tokens) == ("cancelled", 7)
    assert await limiter.in_flight(tenant.key_id) == 0


# --- usage reports ---------------------------------------------------------------------


async def settle(
    meter: Meter, principal: Principal, spec: ModelSpec, usage_id: str, prompt: int, completion: int
) -> int:
    call = await admitted(meter, principal, spec, usage_id)
    call.tally.prompt_tokens, call.tally.completion_tokens = prompt, completion
    await call.settle("succeeded")
    return call.prices.cost(call.tally)


def row(group: str, requests: int, prompt: int, completion: int, cost: int) -> UsageRow:
    return UsageRow(group, requests, prompt, completion, 0, cost)


async def test_usage_summary_after_settlement(meter: Meter, database: Database, store: AccountStore) -> None:
    a = await new_tenant(store, "a")
    b = await new_tenant(store, "b")
    c1 = await settle(meter, a.principal(), PRICED, "u1", 1000, 100)
    c2 = await settle(meter, a.principal(), OTHER_PRICED, "u2", 2000, 200)
    c3 = await settle(meter, b.principal(), PRICED, "u3", 3000, 300)

    by_key = await usage_summary(database, by="key")
    assert sorted(by_key, key=lambda r: r.group) == sorted(
        [row(a.key_id, 2, 3000, 300, c1 + c2), row(b.key_id, 1, 3000, 300, c3)], key=lambda r: r.group
    )
    assert await usage_summary(database, by="model") == [
        row(OTHER_PRICED.id, 1, 2000, 200, c2),
        row(PRICED.id, 2, 4000, 400, c1 + c3),
    ]
    assert await usage_summary(database, by="model", account_id=a.account_id) == [
        row(OTHER_PRICED.id, 1, 2000, 200, c2),
        row(PRICED.id, 1, 1000, 100, c1),
    ]
    assert await usage_summary(database, by="model", key_id=b.key_id) == [row(PRICED.id, 1, 3000, 300, c3)]

    records = await usage_records(database)
    today = records[0].created_at.date()
    assert {r.created_at.date() for r in records} == {today}
    assert await usage_summary(database, by="day") == [row(today.isoformat(), 3, 6000, 600, c1 + c2 + c3)]

    totals = [row(today.isoformat(), 3, 6000, 600, c1 + c2 + c3)]
    assert await usage_summary(database, since=today, until=today) == totals
    assert await usage_summary(database, since=today - timedelta(days=3)) == totals
    assert await usage_summary(database, since=today + timedelta(days=1)) == []
    assert await usage_summary(database, until=today - timedelta(days=1)) == []

    # the ledger's charges add up to the report's cost
    assert sum(-c.amount for c in await charges(database)) == c1 + c2 + c3
    # and the key list knows when each key was last used
    views = {v.key.id: v for v in await store.keys()}
    assert views[a.key_id].last_used_at == max(r.created_at for r in records if r.key_id == a.key_id)


async def test_usage_summary_with_no_records(database: Database) -> None:
    for by in ("key", "model", "day"):
        assert await usage_summary(database, by=by) == []  # type: ignore[arg-type]


async def insert_usage(database: Database, account_id: str, usage_id: str, at: datetime, cost: int) -> None:
    """A record written on a given day (inserting is what the tables allow; they refuse edits)."""
    async with database.session() as session:
        session.add(
            UsageRecord(
                id=usage_id,
                account_id=account_id,
                key_id=None,
                model="glm-4",
                endpoint=CHAT,
                prompt_tokens=10,
                completion_tokens=1,
                cost=cost,
                status="succeeded",
                started_at=at,
                created_at=at,
            )
        )


async def test_usage_days_are_utc_days_and_since_until_are_inclusive(database: Database, store: AccountStore) -> None:
    account = await store.create_account("acme")
    stamps = {
        "d1-first": datetime(2025, 3, 1, 0, 0, 0, tzinfo=UTC),
        "d1-last": datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        # 2025-03-02 07:30 in Shanghai is still 2025-03-01 in UTC
        "d1-shanghai": datetime.fromisoformat("2025-03-02T07:30:00+08:00"),
        "d2": datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC),
        "d4": datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC),
    }
    for n, (usage_id, at) in enumerate(stamps.items(), start=1):
        await insert_usage(database, account.id, usage_id, at, cost=n)

    everything = [
        UsageRow("2025-03-01", 3, 30, 3, 0, 1 + 2 + 3),
        UsageRow("2025-03-02", 1, 10, 1, 0, 4),
        UsageRow("2025-03-04", 1, 10, 1, 0, 5),
    ]
    assert await usage_summary(database, by="day") == everything
    assert await usage_summary(database, by="day", since=date(2025, 3, 1), until=date(2025, 3, 4)) == everything
    assert await usage_summary(database, by="day", since=date(2025, 3, 2)) == everything[1:]
    assert await usage_summary(database, by="day", until=date(2025, 3, 1)) == everything[:1]
    assert await usage_summary(database, by="day", since=date(2025, 3, 2), until=date(2025, 3, 2)) == everything[1:2]
    assert await usage_summary(database, by="day", since=date(2025, 3, 3), until=date(2025, 3, 3)) == []
    assert await usage_summary(database, by="key", since=date(2025, 3, 2)) == [UsageRow("(no key)", 2, 20, 2, 0, 9)]
    assert await usage_summary(database, by="model", until=date(2025, 3, 2)) == [UsageRow("glm-4", 4, 40, 4, 0, 10)]


# --- backing services failing ---------------------------------------------------------


async def test_an_unreachable_limits_store_is_a_503_not_a_500(database: Database, tenant: Tenant) -> None:
    # A real Redis client aimed at a port where nothing listens.
    dead = RedisLimiter.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(ServiceUnavailableError) as info:
            await Meter(database, dead).admit(tenant.principal(KeyLimits(concurrency=5)), PRICED, CHAT, bound=BOUND)
        assert (info.value.status, info.value.code) == (503, "1234")
    finally:
        await dead.close()


class BrokenLease(Lease):
    async def release(self) -> None:
        raise ConnectionError("redis went away")


async def test_a_lease_that_cannot_be_given_back_does_not_undo_the_record(
    meter: Meter, database: Database, tenant: Tenant
) -> None:
    call = await admitted(meter, tenant.principal())
    call.lease = BrokenLease()
    call.tally.prompt_tokens, call.tally.completion_tokens = 10, 2
    await call.settle("succeeded")  # must not raise: the answer was delivered and is charged
    assert [r.id for r in await usage_records(database)] == ["chatcmpl-1"]
    assert len(await charges(database)) == 1


async def test_a_conflicting_usage_id_is_logged_not_raised(
    meter: Meter, database: Database, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    first = await admitted(meter, tenant.principal())
    await first.settle("succeeded")
    second = await admitted(meter, tenant.principal())  # the same usage id: a conflict, not a retry
    await second.settle("succeeded")
    assert len(await usage_records(database)) == 1
    # No spool to keep it in (this meter has none): the log line carries the whole record, and it is counted.
    assert 'USAGE NOT RECORDED {"id": "chatcmpl-1"' in caplog.text
    assert meter.unrecorded_count() == 1
