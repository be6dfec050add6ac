"""Fine-tuning charges on SQLite and PostgreSQL: tokens beyond those billed, once — also when a job is re-claimed
after its worker died and runs again the steps after its last checkpoint — and never by a worker that lost the job."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from openglm.accounts.money import cost_of, to_nano
from openglm.jobs.store import JobStore, LeaseLost
from openglm.store.db import Database
from openglm.store.models import Account, LedgerEntry, UsageRecord
from openglm.store.types import utcnow
from openglm.tuning.billing import Billing, charge

from ..jobs import sample_kinds  # noqa: F401  (registers the test kinds)
from ..jobs.helpers import Clock

PRICE = to_nano("2")  # CNY per 1K trained tokens


async def charged(db: Database, account: str) -> tuple[int, int]:
    """(tokens in usage records, nano-yuan in charges) of the account."""
    async with db.read() as session:
        tokens = await session.scalar(select(func.coalesce(func.sum(UsageRecord.prompt_tokens), 0)))
        paid = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account, LedgerEntry.kind == "charge"
            )
        )
    return int(tokens or 0), -int(paid or 0)


async def test_a_reclaimed_job_pays_each_token_once(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_ft", name="ft"))
    clock = Clock()
    store = JobStore(database, clock=clock)
    job = await store.submit("test.noop", {}, account_id="acct_ft")
    billing = Billing("acct_ft", None, "base", PRICE, utcnow())

    first = await store.claim(["test.noop"], "w1", 30)
    assert first is not None
    assert await charge(store, first, billing, 300, {"step": 3}) == 300
    assert await charge(store, first, billing, 500, {"step": 5}) == 200
    assert await charge(store, first, billing, 500, {"step": 5}) == 0  # the same point again: nothing
    # The worker dies; after the lease another claims the job and resumes from a checkpoint at step 2.
    clock.advance(31)
    second = await store.claim(["test.noop"], "w2", 30)
    assert second is not None and second.attempt == 2
    assert await charge(store, second, billing, 200, {"step": 2}) == 0
    assert await charge(store, second, billing, 500, {"step": 5}) == 0  # steps 3-5 again: already paid
    assert await charge(store, second, billing, 700, {"step": 7}) == 200
    with pytest.raises(LeaseLost):  # the first worker wakes up: it holds nothing and writes nothing
        await charge(store, first, billing, 900, {"step": 9})
    assert await charged(database, "acct_ft") == (700, 700 * PRICE // 1000)
    progress = (await store.get(job.id)).progress
    assert progress == {"step": 7, "billed_tokens": 700}


async def test_costs_sum_exactly_across_charges(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_r", name="r"))
    store = JobStore(database)
    await store.submit("test.noop", {}, account_id="acct_r")
    lease = await store.claim(["test.noop"], "w", 30)
    assert lease is not None
    odd = Billing("acct_r", None, "base", 333, utcnow())  # 0.000000333 CNY per 1K: rounding at every charge
    for tokens in range(1, 2000, 7):
        await charge(store, lease, odd, tokens, {})
    last = max(range(1, 2000, 7))
    assert await charged(database, "acct_r") == (last, cost_of(last, 333))
