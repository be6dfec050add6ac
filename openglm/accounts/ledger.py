"""The append-only ledger: balances are sums of entries; grants, top-ups and charges are all entries.

Database triggers (migration 0003) move the account's row in ``account_balances`` with every entry inserted, so
reading a balance is one row; ``verify`` recomputes the sums from the entries and lists any account where they
differ, and ``gaps`` checks that usage records and charges pair one to one, for the same amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..store.db import Database
from ..store.models import AccountBalance, LedgerEntry, UsageRecord
from ..store.types import utcnow

KINDS = ("grant", "topup", "charge", "refund", "adjustment", "share")  # share: a creator's part of a charge


@dataclass(frozen=True)
class Entry:
    id: int
    account_id: str
    kind: str
    amount: int  # nano-yuan
    usage_id: str | None
    note: str
    created_at: datetime


def _balance_query(account_id: str) -> Select[tuple[int]]:
    return select(AccountBalance.balance).where(AccountBalance.account_id == account_id)


async def balance(session: AsyncSession, account_id: str) -> int:
    return int((await session.execute(_balance_query(account_id))).scalar() or 0)


async def fetch_balance(db: Database, account_id: str) -> int:
    """The balance as of the latest commit, read the hot path's way (admission checks)."""
    rows = await db.fetch(_balance_query(account_id))
    return int(rows[0][0]) if rows else 0


async def append(
    db: AsyncSession | AsyncConnection,
    account_id: str,
    kind: str,
    amount: int,
    *,
    note: str = "",
    usage_id: str | None = None,
) -> Entry:
    """Insert one entry (a Core statement: this runs for every metered call); triggers move the balance."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}; known: {', '.join(KINDS)}")
    created_at = utcnow()
    result = await db.execute(
        insert(LedgerEntry)
        .values(account_id=account_id, kind=kind, amount=amount, note=note, usage_id=usage_id, created_at=created_at)
        .returning(LedgerEntry.id)
    )
    return Entry(int(result.scalar_one()), account_id, kind, amount, usage_id, note, created_at)


@dataclass(frozen=True)
class Mismatch:
    account_id: str
    kept: int
    summed: int


async def verify(session: AsyncSession) -> list[Mismatch]:
    """Accounts whose kept balance differs from the sum of their ledger entries (none, unless tampered with)."""
    sums = (
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount).label("summed"))
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    rows = await session.execute(
        select(AccountBalance.account_id, AccountBalance.balance, func.coalesce(sums.c.summed, 0)).outerjoin(
            sums, sums.c.account_id == AccountBalance.account_id
        )
    )
    return [Mismatch(a, int(kept), int(summed)) for a, kept, summed in rows if int(kept) != int(summed)]


@dataclass(frozen=True)
class Gap:
    """A break in the pairing of usage records and charges."""

    problem: str
    ref: str  # the usage record's id, or the ledger entry's


GAPS_SHOWN = 100


async def gaps(session: AsyncSession) -> list[Gap]:
    """Every usage record has exactly one charge, for minus its cost, and every charge names its record (the
    ``usage_id`` foreign key and unique index keep the rest). At most ``GAPS_SHOWN`` of each kind."""
    charge = LedgerEntry.__table__.alias("charge")
    unpaired = await session.scalars(
        select(UsageRecord.id)
        .outerjoin(charge, charge.c.usage_id == UsageRecord.id)
        .where(charge.c.id.is_(None))
        .limit(GAPS_SHOWN)
    )
    found = [Gap("usage record without its charge", usage_id) for usage_id in unpaired]
    orphans = await session.scalars(
        select(LedgerEntry.id).where(LedgerEntry.kind == "charge", LedgerEntry.usage_id.is_(None)).limit(GAPS_SHOWN)
    )
    found += [Gap("charge without a usage record", str(entry_id)) for entry_id in orphans]
    differing = await session.execute(
        select(UsageRecord.id, UsageRecord.cost, LedgerEntry.amount, LedgerEntry.kind)
        .join(LedgerEntry, LedgerEntry.usage_id == UsageRecord.id)
        .where((LedgerEntry.amount != -UsageRecord.cost) | (LedgerEntry.kind != "charge"))
        .limit(GAPS_SHOWN)
    )
    found += [
        Gap(f"{kind} of {amount} nano-yuan for a record costing {cost}", usage_id)
        for usage_id, cost, amount, kind in differing
    ]
    return found


async def entries(
    session: AsyncSession, account_id: str, *, limit: int = 100, before: int | None = None
) -> list[Entry]:
    """Newest first; ``before`` pages on by entry id."""
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = await session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit))
    return [Entry(r.id, r.account_id, r.kind, r.amount, r.usage_id, r.note, r.created_at) for r in rows]
