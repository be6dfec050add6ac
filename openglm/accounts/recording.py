"""One usage record and its ledger entries, as one value (``UsageEntry``) and one write (``write_usage``): what a
settlement writes, and what the spool keeps and replays when the database would not take it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store.models import UsageRecord
from . import ledger

STATUSES = ("succeeded", "cancelled", "failed")


@dataclass(frozen=True)
class UsageEntry:
    """A settled call: the usage record's columns. The account is charged ``cost``; an agent's creator (another
    account) is credited ``agent_share``."""

    id: str
    request_id: str | None
    account_id: str
    key_id: str | None
    model: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    images: int
    cost: int  # nano-yuan
    status: str
    started_at: datetime
    created_at: datetime
    agent_id: str | None = None
    agent_owner: str | None = None
    agent_share: int | None = None  # nano-yuan

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown usage status {self.status!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"], data["created_at"] = self.started_at.isoformat(), self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageEntry:
        when = {k: datetime.fromisoformat(data[k]) for k in ("started_at", "created_at")}
        return cls(**{**data, **when})


async def write_usage(connection: AsyncConnection, entry: UsageEntry) -> None:
    """The record, its charge (also for free calls, so records and charges pair one to one) and the creator's
    share, in the caller's transaction: two Core INSERTs for most calls, no ORM."""
    await connection.execute(insert(UsageRecord).values(**asdict(entry)))
    await ledger.append(connection, entry.account_id, "charge", -entry.cost, usage_id=entry.id, note=entry.endpoint)
    if entry.agent_share and entry.agent_owner is not None:
        note = f"share of {entry.id} through agent {entry.agent_id}"
        await ledger.append(connection, entry.agent_owner, "share", entry.agent_share, note=note)
