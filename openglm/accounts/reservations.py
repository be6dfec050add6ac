"""Balance reservations: what admitted calls may still cost, held against their account's balance.

An account's **available** balance is ``balance - reserved`` (``account_balances``). Admission reserves a call's
maximum cost with one conditional UPDATE of the account's row — ``reserved += cost WHERE balance - reserved > 0``
— and records the reservation in ``balance_reservations`` in the same transaction. The database serializes
updates of one row (SQLite has one writer; PostgreSQL re-checks the WHERE against the row's newest version after
taking its lock), so however many requests, keys and replicas race, each admission sees every earlier one.

A call is admitted while the available balance is above zero and then holds its whole maximum cost, so the
available balance — and, once everything settles, the balance — goes below zero by less than one call's cost.

Settlement deletes the reservation and takes its amount off ``reserved`` in the transaction that writes the
charge (``release``); a call that ends uncharged releases on its own (``release_now``). Deleting the row first
makes the release happen once, whoever gets there first: settlement, or the sweep of a reservation that expired.

Reservations carry an expiry which their holder renews while the call runs (``renew``). One whose process died
stops being renewed, expires, and is swept (``sweep``): by any replica's renewal loop, and by an admission that
would otherwise be refused for it.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store.db import Database
from ..store.models import AccountBalance, BalanceReservation
from ..store.types import utcnow

RENEW_BATCH = 500


@dataclass(frozen=True)
class Hold:
    """One reservation: ``amount`` nano-yuan of ``account_id``'s balance."""

    id: str
    account_id: str
    amount: int


@dataclass(frozen=True)
class Standing:
    """An account's balance and what calls in flight hold of it (nano-yuan)."""

    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


async def standing(db: Database, account_id: str) -> Standing:
    """Read the hot path's way (one statement, no transaction): the cheap check before anything is written."""
    rows = await db.fetch(
        select(AccountBalance.balance, AccountBalance.reserved).where(AccountBalance.account_id == account_id)
    )
    return Standing(int(rows[0][0]), int(rows[0][1])) if rows else Standing(0, 0)


async def reserve(db: Database, account_id: str, amount: int, ttl: timedelta) -> Hold | None:
    """Hold ``amount`` if the account's available balance is above zero; None (nothing written) if it is not."""
    if amount <= 0:
        raise ValueError(f"a reservation needs a positive amount, not {amount}")
    now = utcnow()
    hold = Hold("rsv_" + secrets.token_hex(12), account_id, amount)
    async with db.writing() as connection:
        moved = await connection.execute(
            update(AccountBalance)
            .where(
                AccountBalance.account_id == account_id,
                AccountBalance.balance - AccountBalance.reserved > 0,
            )
            .values(reserved=AccountBalance.reserved + amount)
        )
        if moved.rowcount != 1:
            return None
        await connection.execute(
            insert(BalanceReservation).values(
                id=hold.id, account_id=account_id, amount=amount, created_at=now, expires_at=now + ttl
            )
        )
    return hold


async def release(connection: AsyncConnection, hold: Hold) -> bool:
    """Give ``hold`` back inside the caller's transaction; False if it was already gone (released or swept)."""
    gone = await connection.execute(
        delete(BalanceReservation).where(BalanceReservation.id == hold.id).returning(BalanceReservation.amount)
    )
    row = gone.first()
    if row is None:
        return False
    await connection.execute(
        update(AccountBalance)
        .where(AccountBalance.account_id == hold.account_id)
        .values(reserved=AccountBalance.reserved - int(row[0]))
    )
    return True


async def release_now(db: Database, holds: Iterable[Hold]) -> None:
    """Give holds back in a transaction of their own (a call that ended without a charge)."""
    holds = list(holds)
    if not holds:
        return
    async with db.writing() as connection:
        for hold in holds:
            await release(connection, hold)


async def renew(db: Database, hold_ids: Iterable[str], ttl: timedelta) -> None:
    """Push the expiry of live holds forward (their calls are still running)."""
    ids = list(hold_ids)
    expires_at = utcnow() + ttl
    for start in range(0, len(ids), RENEW_BATCH):
        async with db.writing() as connection:
            await connection.execute(
                update(BalanceReservation)
                .where(BalanceReservation.id.in_(ids[start : start + RENEW_BATCH]))
                .values(expires_at=expires_at)
            )


async def has_expired(db: Database, account_id: str) -> bool:
    rows = await db.fetch(
        select(BalanceReservation.id)
        .where(BalanceReservation.account_id == account_id, BalanceReservation.expires_at < utcnow())
        .limit(1)
    )
    return bool(rows)


async def sweep(db: Database, account_id: str | None = None, *, now: datetime | None = None) -> int:
    """Delete expired reservations (of one account, or all) and take them off ``reserved``; how many went."""
    query = delete(BalanceReservation).where(BalanceReservation.expires_at < (now or utcnow()))
    if account_id is not None:
        query = query.where(BalanceReservation.account_id == account_id)
    async with db.writing() as connection:
        gone = (
            await connection.execute(query.returning(BalanceReservation.account_id, BalanceReservation.amount))
        ).all()
        totals: dict[str, int] = defaultdict(int)
        for account, amount in gone:
            totals[account] += int(amount)
        for account, total in sorted(totals.items()):  # a fixed order: two sweepers never lock rows crosswise
            await connection.execute(
                update(AccountBalance)
                .where(AccountBalance.account_id == account)
                .values(reserved=AccountBalance.reserved - total)
            )
    return len(gone)


@dataclass(frozen=True)
class ReservedMismatch:
    account_id: str
    kept: int
    summed: int


async def verify(connection: AsyncConnection) -> list[ReservedMismatch]:
    """Accounts whose ``reserved`` differs from the sum of their reservations (none, unless tampered with)."""
    sums = (
        select(BalanceReservation.account_id, func.sum(BalanceReservation.amount).label("summed"))
        .group_by(BalanceReservation.account_id)
        .subquery()
    )
    rows = await connection.execute(
        select(AccountBalance.account_id, AccountBalance.reserved, func.coalesce(sums.c.summed, 0)).outerjoin(
            sums, sums.c.account_id == AccountBalance.account_id
        )
    )
    return [ReservedMismatch(a, int(kept), int(summed)) for a, kept, summed in rows if int(kept) != int(summed)]
