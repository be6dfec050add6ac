"""Balance reservations: what admitted calls may still cost, held against their account's balance.

An account's **available** balance is ``balance - reserved`` (``account_balances``). Admission reserves a call's
maximum cost with one statement: it inserts the reservation into ``balance_reservations`` selecting from the
account's balance row on the condition ``balance - reserved > 0`` (the row locked ``FOR UPDATE`` on PostgreSQL),
and a trigger adds the amount to ``reserved`` in the same statement (migration 0009). The database serializes
the writers of one row (SQLite has one writer; PostgreSQL re-checks the condition against the row's newest
version once it holds the lock), so however many requests, keys and replicas race, each admission sees every
earlier one. On PostgreSQL the statement runs in autocommit: one round trip.

A call is admitted while the available balance is above zero and then holds its whole maximum cost, so the
available balance — and, once everything settles, the balance — goes below zero by less than one call's cost.

Settlement deletes the reservation in the transaction that writes the charge (``release``); a call that ends
uncharged deletes it on its own (``release_now``); the delete trigger takes it off ``reserved``. A row can be
deleted once, so the release happens once, whoever gets there first: settlement, or the sweep of a reservation
that expired.

Reservations carry an expiry which their holder renews while the call runs (``renew``). One whose process died
stops being renewed, expires, and is swept (``sweep``): by any replica's renewal loop, and by an admission that
would otherwise be refused for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store.db import Database
from ..store.models import AccountBalance, BalanceReservation
from ..store.types import UTCDateTime, utcnow

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
    source = (
        select(
            literal(hold.id),
            AccountBalance.account_id,
            literal(amount, BigInteger),
            literal(now, UTCDateTime()),
            literal(now + ttl, UTCDateTime()),
        )
        .where(AccountBalance.account_id == account_id, AccountBalance.balance - AccountBalance.reserved > 0)
        .with_for_update()  # PostgreSQL: wait for, then re-check, the row's newest version; SQLite has one writer
    )
    columns = ["id", "account_id", "amount", "created_at", "expires_at"]
    held = await db.write_one(insert(BalanceReservation).from_select(columns, source).returning(BalanceReservation.id))
    return hold if held == 1 else None


async def release(connection: AsyncConnection, hold: Hold) -> bool:
    """Give ``hold`` back inside the caller's transaction; False if it was already gone (released or swept)."""
    gone = await connection.execute(delete(BalanceReservation).where(BalanceReservation.id == hold.id))
    return bool(gone.rowcount == 1)


async def release_now(db: Database, holds: Iterable[Hold]) -> None:
    """Give holds back on their own (a call that ended without a charge)."""
    ids = [hold.id for hold in holds]
    if ids:
        await db.write_one(delete(BalanceReservation).where(BalanceReservation.id.in_(ids)))


async def renew(db: Database, hold_ids: Iterable[str], ttl: timedelta) -> None:
    """Push the expiry of live holds forward (their calls are still running)."""
    ids = list(hold_ids)
    expires_at = utcnow() + ttl
    for start in range(0, len(ids), RENEW_BATCH):
        batch = ids[start : start + RENEW_BATCH]
        await db.write_one(
            update(BalanceReservation).where(BalanceReservation.id.in_(batch)).values(expires_at=expires_at)
        )


async def has_expired(db: Database, account_id: str) -> bool:
    rows = await db.fetch(
        select(BalanceReservation.id)
        .where(BalanceReservation.account_id == account_id, BalanceReservation.expires_at < utcnow())
        .limit(1)
    )
    return bool(rows)


async def sweep(db: Database, account_id: str | None = None, *, now: datetime | None = None) -> int:
    """Delete expired reservations (of one account, or all; the trigger takes them off ``reserved``); how many
    went."""
    query = delete(BalanceReservation).where(BalanceReservation.expires_at < (now or utcnow()))
    if account_id is not None:
        query = query.where(BalanceReservation.account_id == account_id)
    return await db.write_one(query.returning(BalanceReservation.id))


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
