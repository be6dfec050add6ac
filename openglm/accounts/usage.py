"""Usage reports: requests, tokens and cost per key, model or UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import func, select

from ..store.db import Database
from ..store.models import UsageRecord

GroupBy = Literal["key", "model", "day", "agent"]


@dataclass(frozen=True)
class UsageRow:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    images: int
    cost: int  # nano-yuan


def _group_column(by: GroupBy) -> Any:
    if by == "key":
        return func.coalesce(UsageRecord.key_id, "(no key)")
    if by == "model":
        return UsageRecord.model
    if by == "agent":
        return func.coalesce(UsageRecord.agent_id, "(no agent)")
    # Timestamps are stored as naive UTC on both databases, so date() is the UTC day on both.
    return func.date(UsageRecord.created_at)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def usage_summary(
    db: Database,
    *,
    by: GroupBy = "day",
    account_id: str | None = None,
    key_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[UsageRow]:
    """Totals grouped by ``by``; ``since`` and ``until`` are inclusive UTC days."""
    group = _group_column(by).label("grp")
    query = select(
        group,
        func.count(),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
        func.coalesce(func.sum(UsageRecord.images), 0),
        func.coalesce(func.sum(UsageRecord.cost), 0),
    ).group_by(group)
    if account_id is not None:
        query = query.where(UsageRecord.account_id == account_id)
    if key_id is not None:
        query = query.where(UsageRecord.key_id == key_id)
    if since is not None:
        query = query.where(UsageRecord.created_at >= _start_of(since))
    if until is not None:
        query = query.where(UsageRecord.created_at < _start_of(until + timedelta(days=1)))
    async with db.read() as session:
        rows = (await session.execute(query.order_by(group))).all()
    return [UsageRow(str(g), int(n), int(p), int(c), int(i), int(cost)) for g, n, p, c, i, cost in rows]


@dataclass(frozen=True)
class AgentDay:
    day: str
    calls: int
    tokens: int
    cost: int  # nano-yuan, what callers were charged
    earnings: int  # nano-yuan, what the creator was credited


async def agent_usage(db: Database, agent_id: str) -> list[AgentDay]:
    """Every call through an agent, whoever made it, per UTC day (oldest first)."""
    day = func.date(UsageRecord.created_at).label("day")
    query = (
        select(
            day,
            func.count(),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.cost), 0),
            func.coalesce(func.sum(UsageRecord.agent_share), 0),
        )
        .where(UsageRecord.agent_id == agent_id)
        .group_by(day)
        .order_by(day)
    )
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    return [AgentDay(str(d), int(n), int(p) + int(c), int(cost), int(e)) for d, n, p, c, cost, e in rows]


async def agent_tokens(db: Database, agent_id: str) -> tuple[int, int]:
    """Prompt and completion tokens of every call through an agent."""
    query = select(
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
    ).where(UsageRecord.agent_id == agent_id)
    async with db.read() as session:
        prompt, completion = (await session.execute(query)).one()
    return int(prompt), int(completion)
