"""Balance reservations (issue #12, item 3) on a real SQLite file and a real PostgreSQL database: concurrent
admissions cannot spend a balance twice, settlement gives back exactly what was held, and a holder that dies
does not lock the balance for good."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from openglm.accounts import ledger, reservations
from openglm.accounts.auth import Principal
from openglm.accounts.limits import MemoryLimiter
from openglm.accounts.metering import Meter, MeteredCall
from openglm.accounts.money import to_nano
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import AccountStore
from openglm.catalog import ModelSpec, Prices
from openglm.errors import InsufficientBalanceError
from openglm.serving.usage import UsageBound
from openglm.store.db import Database, open_database
from openglm.store.models import BalanceReservation

CHAT = "chat.completions"
PRICED = ModelSpec(id="priced", source="-", prices=Prices(input=Decimal("0.1"), output=Decimal("0.2")))
BOUND = UsageBound(prompt_tokens=1000, completion_tokens=1000)  # 0.1 + 0.2 = 0.3 CNY
HOLD = to_nano("0.3")


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(bytes(range(32))))


async def tenant(store: AccountStore, balance: str = "1") -> Principal:
    account = await store.create_account("acme", grant=to_nano(balance))
    key, _ = await store.create_key(account.id)
    return Principal(account_id=account.id, key_id=key.id)


def meter(database: Database, ttl: float = 900.0) -> Meter:
    return Meter(database, MemoryLimiter(), reservation_ttl=ttl)


async def burst(meters: list[Meter], principal: Principal, calls: int) -> list[MeteredCall | BaseException]:
    async def one(i: int) -> MeteredCall:
        return await meters[i % len(meters)].admit(principal, PRICED, CHAT, bound=BOUND)

    return await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)


async def settle_all(calls: list[MeteredCall], prompt: int, completion: int) -> None:
    for n, call in enumerate(calls):
        call.bind(f"chatcmpl-{n}-{id(call)}", None)
        call.tally.prompt_tokens, call.tally.completion_tokens = prompt, completion
        await call.settle("succeeded")


async def test_a_burst_is_admitted_only_while_the_balance_lasts(database: Database, store: AccountStore) -> None:
    principal = await tenant(store)
    outcomes = await burst([meter(database)], principal, 100)
    admitted = [o for o in outcomes if isinstance(o, MeteredCall)]
    refused = [o for o in outcomes if not isinstance(o, MeteredCall)]
    # 1 CNY admits while something is left: 1 → 0.7 → 0.4 → 0.1 → -0.2
    assert len(admitted) == 4
    assert all(isinstance(r, InsufficientBalanceError) and r.code == "1113" for r in refused)
    standing = await reservations.standing(database, principal.account_id)
    assert (standing.balance, standing.reserved) == (to_nano(1), 4 * HOLD)
    await settle_all(admitted, 1000, 1000)  # each costs its whole bound
    standing = await reservations.standing(database, principal.account_id)
    assert (standing.balance, standing.reserved) == (to_nano(1) - 4 * HOLD, 0)
    assert standing.balance > -HOLD  # below zero by less than one call


async def test_two_processes_on_one_database_share_the_balance(db_url: str, store: AccountStore) -> None:
    principal = await tenant(store)
    first, second = await open_database(db_url), await open_database(db_url)
    try:
        outcomes = await burst([meter(first), meter(second)], principal, 60)
        admitted = [o for o in outcomes if isinstance(o, MeteredCall)]
        assert len(admitted) == 4
        await settle_all(admitted, 10, 10)
    finally:
        await first.close()
        await second.close()


async def test_settlement_gives_back_exactly_what_was_held(database: Database, store: AccountStore) -> None:
    principal = await tenant(store, "10")
    calls = [await meter(database).admit(principal, PRICED, CHAT, bound=BOUND) for _ in range(3)]
    assert (await reservations.standing(database, principal.account_id)).reserved == 3 * HOLD
    await settle_all(calls[:1], 500, 100)  # 0.05 + 0.02
    await calls[1].abandon()  # failed before generating: nothing charged, the hold given back
    standing = await reservations.standing(database, principal.account_id)
    assert (standing.balance, standing.reserved) == (to_nano(10) - to_nano("0.07"), HOLD)
    await settle_all(calls[2:], 0, 1)
    assert (await reservations.standing(database, principal.account_id)).reserved == 0
    async with database.read() as session:
        assert await ledger.verify(session) == []
        assert await reservations.verify(await session.connection()) == []


async def test_a_further_round_reserves_or_is_refused(database: Database, store: AccountStore) -> None:
    principal = await tenant(store, "0.5")
    call = await meter(database).admit(principal, PRICED, CHAT, bound=BOUND)  # 0.5 → 0.2 available
    await call.reserve(BOUND)  # an agent's second round: 0.2 → -0.1
    with pytest.raises(InsufficientBalanceError):
        await call.reserve(BOUND)
    assert len(call.holds) == 2
    await settle_all([call], 1000, 500)  # 0.2 charged; both holds given back
    standing = await reservations.standing(database, principal.account_id)
    assert (standing.balance, standing.reserved) == (to_nano("0.3"), 0)


async def test_a_call_without_a_key_is_not_held_to_the_balance_in_further_rounds(
    database: Database, store: AccountStore
) -> None:
    """Authentication off: every request is the local account's, without a key, admitted without a hold; an
    agent's later rounds must not be refused for a balance (0 here) the call was never held to."""
    principal = await tenant(store, "0.5")
    local = Principal(principal.account_id, None)
    call = await meter(database).admit(local, PRICED, CHAT, bound=BOUND)
    for _ in range(3):  # 0.9 of rounds on 0.5: none refused, nothing held
        await call.reserve_round(BOUND)
    assert call.holds == []
    keyed = await meter(database).admit(principal, PRICED, CHAT, bound=BOUND)
    await keyed.reserve_round(BOUND)  # a key's call: held, as its admission was
    assert len(keyed.holds) == 2
    with pytest.raises(InsufficientBalanceError):
        await keyed.reserve_round(BOUND)
    await settle_all([call, keyed], 10, 10)


async def test_a_dead_holders_reservation_expires_and_is_swept(database: Database, store: AccountStore) -> None:
    principal = await tenant(store, "0.2")
    dead = meter(database, ttl=0.6)
    await dead.admit(principal, PRICED, CHAT, bound=BOUND)  # holds 0.3 of 0.2
    await dead.drain()  # the process "dies": nothing renews its hold any more
    alive = meter(database)
    with pytest.raises(InsufficientBalanceError) as refused:
        await alive.admit(principal, PRICED, CHAT, bound=BOUND)
    assert "held by calls in flight" in refused.value.message
    await asyncio.sleep(0.8)
    call = await alive.admit(principal, PRICED, CHAT, bound=BOUND)  # the refusal path swept the expired hold
    standing = await reservations.standing(database, principal.account_id)
    assert standing.reserved == HOLD
    await call.abandon()


async def test_live_reservations_are_renewed(database: Database, store: AccountStore) -> None:
    principal = await tenant(store)
    holder = meter(database, ttl=0.6)  # renewed every 0.2 s
    call = await holder.admit(principal, PRICED, CHAT, bound=BOUND)
    await asyncio.sleep(1.2)
    assert await reservations.sweep(database) == 0  # never expired: it was renewed
    assert (await reservations.standing(database, principal.account_id)).reserved == HOLD
    renewing = holder._renewing
    assert renewing is not None and not renewing.done()
    await settle_all([call], 1, 1)
    await asyncio.wait_for(renewing, timeout=1)  # it stops by itself once nothing is held


async def test_a_swept_reservation_is_not_given_back_twice(database: Database, store: AccountStore) -> None:
    principal = await tenant(store)
    holder = meter(database)
    call = await holder.admit(principal, PRICED, CHAT, bound=BOUND)
    async with database.session() as session:  # as if its holder had stopped renewing it long ago
        await session.execute(update(BalanceReservation).values(expires_at=BalanceReservation.created_at))
    assert await reservations.sweep(database) == 1
    await settle_all([call], 1000, 0)  # the late settlement charges, and finds nothing left to give back
    standing = await reservations.standing(database, principal.account_id)
    assert (standing.balance, standing.reserved) == (to_nano(1) - to_nano("0.1"), 0)
    async with database.read() as session:
        assert list(await session.scalars(select(BalanceReservation))) == []
