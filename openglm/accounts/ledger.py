"""The append-only ledger: balances are sums of entries; grants, top-ups and charges are all entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import LedgerEntry

KINDS = ("grant", "topup", "charge", "refund", "adjustment")


@dataclass(frozen=True)
class Entry:
    id: int
    account_id: str
    kind: str
    amount: int  # nano-yuan
    usage_id: str | None
    note: str
    created_at: datetime


async def balance(session: AsyncSession, account_id: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account_id == account_id)
    )
    return int(total or 0)


def append(
    session: AsyncSession, account_id: str, kind: str, amount: int, *, note: str = "", usage_id: str | None = None
) -> LedgerEntry:
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}; known: {', '.join(KINDS)}")
    entry = LedgerEntry(account_id=account_id, kind=kind, amount=amount, note=note, usage_id=usage_id)
    session.add(entry)
    return entry


async def entries(
    session: AsyncSession, account_id: str, *, limit: int = 100, before: int | None = None
) -> list[Entry]:
    """Newest first; ``before`` pages on by entry id."""
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = await session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit))
    return [Entry(r.id, r.account_id, r.kind, r.amount, r.usage_id, r.note, r.created_at) for r in rows]
