"""The record of content-safety hits (``moderation_hits``), for the console: an account sees its own, an operator
everyone's."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from ..store.db import Database
from ..store.models import ModerationHit
from ..store.types import utcnow

MATCHED_CHARS = 200


@dataclass(frozen=True)
class HitRecord:
    account_id: str
    key_id: str | None
    model: str
    endpoint: str
    request_id: str
    stage: str
    checker: str
    category: str
    matched: str = ""


def new_hit_id() -> str:
    return f"mod-{secrets.token_hex(12)}"


class HitStore:
    def __init__(self, db: Database):
        self.db = db

    async def add(self, hits: Sequence[HitRecord]) -> None:
        if not hits:
            return
        now = utcnow()
        rows = [
            {
                **vars(hit),
                "id": new_hit_id(),
                "model": hit.model[:200],
                "request_id": hit.request_id[:128],
                "matched": hit.matched[:MATCHED_CHARS],
                "created_at": now,
            }
            for hit in hits
        ]
        await self.db.write_one(insert(ModerationHit).values(rows))

    async def page(
        self,
        account_id: str | None,
        *,
        limit: int,
        after: str | None = None,
        category: str | None = None,
        stage: str | None = None,
    ) -> list[ModerationHit]:
        """Newest first; ``account_id`` None: every account's (the operator's view). ``after``: the hits listed
        after that one (an id not in view gives nothing)."""
        query = select(ModerationHit)
        if account_id is not None:
            query = query.where(ModerationHit.account_id == account_id)
        if after is not None:
            async with self.db.read() as session:
                anchor = await session.get(ModerationHit, after)
            if anchor is None or (account_id is not None and anchor.account_id != account_id):
                return []
            query = query.where(
                (ModerationHit.created_at < anchor.created_at)
                | ((ModerationHit.created_at == anchor.created_at) & (ModerationHit.id < anchor.id))
            )
        if category is not None:
            query = query.where(ModerationHit.category == category)
        if stage is not None:
            query = query.where(ModerationHit.stage == stage)
        query = query.order_by(ModerationHit.created_at.desc(), ModerationHit.id.desc()).limit(limit)
        async with self.db.read() as session:
            return list(await session.scalars(query))
