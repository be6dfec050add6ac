"""Stored conversations: the assistant API's (the server holds the history) and GLM chats' (the version used).

A conversation belongs to one account and one assistant (a GLM id or a catalog agent id) and keeps the GLM
version it started with. A turn — the user's message and the answer with its tool calls, collapsed from the
stream — is written in one transaction when the stream ends, creating the conversation on its first turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidFieldError, NotFoundError
from ..store.db import Database
from ..store.models import Conversation, ConversationMessage

log = logging.getLogger(__name__)
TITLE_CHARS = 60
WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    account_id: str
    assistant_id: str
    agent_version: int | None
    title: str
    prompt_tokens: int
    completion_tokens: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None
    attachments: list[dict[str, Any]] | None
    created_at: datetime


@dataclass
class Turn:
    """One exchange: what the user sent and what was delivered back. ``user`` is None for a turn that continues
    after the caller's function results (the answer is stored; the user message was stored with the turn before)."""

    user: str | None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    continues: bool = False  # the turn continues a conversation that existed when it started


def new_conversation_id() -> str:
    return secrets.token_hex(12)


def title_of(text: str) -> str:
    words = " ".join(text.split())
    return (words[: TITLE_CHARS - 1] + "…" if len(words) > TITLE_CHARS else words) or "Untitled"


class ConversationStore:
    def __init__(self, db: Database):
        self.db = db
        self._writing: set[asyncio.Task[None]] = set()

    async def get(self, account_id: str, conversation_id: str) -> ConversationRecord:
        async with self.db.read() as session:
            row = await session.get(Conversation, (account_id, conversation_id))
        if row is None:
            raise NotFoundError(f"conversation {conversation_id!r} does not exist")
        return _record(row)

    async def find(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        try:
            return await self.get(account_id, conversation_id)
        except NotFoundError:
            return None

    async def messages(self, account_id: str, conversation_id: str) -> list[StoredMessage]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(ConversationMessage)
                .where(
                    ConversationMessage.account_id == account_id,
                    ConversationMessage.conversation_id == conversation_id,
                )
                .order_by(ConversationMessage.seq)
            )
            return [
                StoredMessage(r.role, r.content, _loads(r.tool_calls), _loads(r.attachments), r.created_at)
                for r in rows
            ]

    async def page(
        self, account_id: str, assistant_id: str | None, page: int, size: int
    ) -> tuple[list[ConversationRecord], int]:
        """Newest first (by last activity)."""
        query = select(Conversation).where(Conversation.account_id == account_id)
        if assistant_id is not None:
            query = query.where(Conversation.assistant_id == assistant_id)
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
                .offset((page - 1) * size)
                .limit(size)
            )
            return [_record(r) for r in rows], int(total or 0)

    async def delete(self, account_id: str, conversation_id: str) -> None:
        await self.get(account_id, conversation_id)
        async with self.db.session() as session:
            await session.execute(
                delete(ConversationMessage).where(
                    ConversationMessage.account_id == account_id,
                    ConversationMessage.conversation_id == conversation_id,
                )
            )
            await session.execute(
                delete(Conversation).where(Conversation.account_id == account_id, Conversation.id == conversation_id)
            )

    async def record_turn(
        self, account_id: str, conversation_id: str, assistant_id: str, agent_version: int | None, turn: Turn
    ) -> None:
        """Append a turn, creating the conversation on its first. Turns written at once on one conversation both
        land, one after the other (the loser of a race on a ``seq`` retries). A turn that ``continues`` a
        conversation deleted meanwhile is dropped, not stored as a new conversation."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self._append(account_id, conversation_id, assistant_id, agent_version, turn)
                return
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise

    async def _append(
        self, account_id: str, conversation_id: str, assistant_id: str, agent_version: int | None, turn: Turn
    ) -> None:
        now = datetime.now(UTC)
        async with self.db.session() as session:
            # Locked on PostgreSQL, so a concurrent turn waits and then reads the totals and last seq this one
            # leaves (SQLite's writing sessions are serialized already).
            row = await session.get(Conversation, (account_id, conversation_id), with_for_update=True)
            if row is None and turn.continues:  # deleted while this turn ran: it is not brought back
                log.info("conversation %s was deleted during a turn; the turn is dropped", conversation_id)
                return
            if row is None:
                row = Conversation(
                    account_id=account_id,
                    id=conversation_id,
                    assistant_id=assistant_id,
                    agent_version=agent_version,
                    title=title_of(turn.user or ""),
                    prompt_tokens=0,
                    completion_tokens=0,
                    created_at=now,
                )
                session.add(row)
                seq = 0
            elif row.assistant_id != assistant_id:
                raise InvalidFieldError(f"conversation {conversation_id!r} belongs to another assistant")
            else:
                last = await session.scalar(
                    select(func.max(ConversationMessage.seq)).where(
                        ConversationMessage.account_id == account_id,
                        ConversationMessage.conversation_id == conversation_id,
                    )
                )
                seq = 0 if last is None else int(last) + 1
            row.prompt_tokens += turn.prompt_tokens
            row.completion_tokens += turn.completion_tokens
            row.updated_at = now
            await session.flush()
            common = {"account_id": account_id, "conversation_id": conversation_id, "created_at": now}
            if turn.user is not None:
                session.add(
                    ConversationMessage(
                        seq=seq, role="user", content=turn.user, attachments=_dumps(turn.attachments), **common
                    )
                )
                seq += 1
            session.add(
                ConversationMessage(
                    seq=seq,
                    role="assistant",
                    content=turn.answer,
                    tool_calls=_dumps(turn.tool_calls),
                    **common,
                )
            )

    def spawn(self, write: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Write in a task of its own, so that a stream cancelled by its client still stores what it delivered."""
        task = asyncio.create_task(write)
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        task.add_done_callback(_log_failure)
        return task

    async def drain(self) -> None:
        while self._writing:
            await asyncio.gather(*list(self._writing), return_exceptions=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    """A write in a task of its own has no one awaiting it (the client may be gone): its failure is logged."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("a conversation write failed", exc_info=error)


def _dumps(value: list[dict[str, Any]]) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value else None


def _loads(value: str | None) -> list[dict[str, Any]] | None:
    return json.loads(value) if value else None


def _record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        account_id=row.account_id,
        assistant_id=row.assistant_id,
        agent_version=row.agent_version,
        title=row.title,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
