"""The ``batches`` and ``batch_lines`` rows: a batch, private to its account (another account's is not found), its
status moves, and each finished line's answer. A batch and its job are written in one transaction."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from ..errors import NotFoundError
from ..jobs.store import JobStore
from ..protocol.batches import BatchError
from ..store.db import Database
from ..store.models import Batch, BatchLine
from ..store.types import utcnow

JOB_KIND = "batch"
WINDOW = timedelta(hours=24)  # the only completion window either reference offers
FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class NewBatch:
    account_id: str
    key_id: str | None
    user_id: str | None
    endpoint: str
    model: str | None
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    auto_delete_input_file: bool
    base_url: str
    total: int


@dataclass(frozen=True)
class LineResult:
    line: int
    custom_id: str
    ok: bool
    status_code: int
    body: dict[str, Any]


class BatchStore:
    def __init__(self, db: Database, jobs: JobStore):
        self.db = db
        self.jobs = jobs

    async def create(self, new: NewBatch, errors: list[BatchError] | None = None) -> Batch:
        """A batch that will run (its job queued in the same transaction), or — with ``errors`` — one that failed
        validation (no job), as the reference records a refused input file."""
        now = utcnow()
        batch = Batch(
            id=new_batch_id(),
            account_id=new.account_id,
            key_id=new.key_id,
            user_id=new.user_id,
            endpoint=new.endpoint,
            model=new.model,
            input_file_id=new.input_file_id,
            completion_window=new.completion_window,
            metadata_json=json.dumps(new.metadata) if new.metadata else None,
            auto_delete_input_file=new.auto_delete_input_file,
            base_url=new.base_url,
            status="failed" if errors else "validating",
            total=new.total,
            completed=0,
            failed=0,
            prompt_tokens=0,
            completion_tokens=0,
            created_at=now,
            expires_at=now + WINDOW,
        )
        if errors:
            batch.errors = json.dumps([e.model_dump(exclude_none=True) for e in errors])
            batch.failed_at = now
        async with self.db.session() as session:
            if not errors:
                job = self.jobs.add(
                    session, JOB_KIND, {"batch_id": batch.id}, account_id=new.account_id, priority=-1, prefix="batchjob"
                )
                batch.job_id = job.id
            session.add(batch)
        return batch

    async def get(self, batch_id: str, account_id: str | None = None) -> Batch:
        async with self.db.read() as session:
            batch = await session.get(Batch, batch_id)
        if batch is None or (account_id is not None and batch.account_id != account_id):
            raise NotFoundError(f"no batch {batch_id!r}")
        return batch

    async def page(self, account_id: str, limit: int, after: str | None) -> tuple[list[Batch], bool]:
        """Newest first; ``after``: the batches listed after that one (an id not the account's gives nothing)."""
        query = select(Batch).where(Batch.account_id == account_id)
        if after is not None:
            anchor = await self.get(after, account_id)
            query = query.where(
                (Batch.created_at < anchor.created_at)
                | ((Batch.created_at == anchor.created_at) & (Batch.id < anchor.id))
            )
        query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)
        async with self.db.read() as session:
            rows = list(await session.scalars(query))
        return rows[:limit], len(rows) > limit

    async def move(self, batch_id: str, status: str, *, only_from: frozenset[str] | None = None, **values: Any) -> bool:
        """Set the status (and its timestamp, and ``values``); with ``only_from``, only if it is one of those now.
        True when the row changed."""
        stamp = {f"{status}_at": utcnow()} if status in STAMPED else {}
        query = update(Batch).where(Batch.id == batch_id)
        if only_from is not None:
            query = query.where(Batch.status.in_(sorted(only_from)))
        async with self.db.session() as session:
            changed = await session.execute(query.values(status=status, **stamp, **values))
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    async def set_errors(self, batch_id: str, errors: list[dict[str, Any]]) -> None:
        async with self.db.session() as session:
            await session.execute(update(Batch).where(Batch.id == batch_id).values(errors=json.dumps(errors)))

    async def record_line(self, batch_id: str, result: LineResult, prompt_tokens: int, completion_tokens: int) -> None:
        """A finished line: its answer kept, the batch's counts and token totals moved, in one transaction."""
        counts = {"completed": Batch.completed + 1} if result.ok else {"failed": Batch.failed + 1}
        async with self.db.session() as session:
            if await session.get(BatchLine, (batch_id, result.line)) is not None:
                return  # another attempt of the job (a replica that lost its lease) answered it first
            session.add(
                BatchLine(
                    batch_id=batch_id,
                    line=result.line,
                    custom_id=result.custom_id,
                    ok=result.ok,
                    status_code=result.status_code,
                    body=json.dumps(result.body, ensure_ascii=False),
                )
            )
            await session.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    prompt_tokens=Batch.prompt_tokens + prompt_tokens,
                    completion_tokens=Batch.completion_tokens + completion_tokens,
                    **counts,
                )
            )

    async def done_lines(self, batch_id: str) -> set[int]:
        async with self.db.read() as session:
            return set(await session.scalars(select(BatchLine.line).where(BatchLine.batch_id == batch_id)))

    async def results(self, batch_id: str) -> list[LineResult]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(BatchLine).where(BatchLine.batch_id == batch_id).order_by(BatchLine.line)
            )
            return [LineResult(r.line, r.custom_id, r.ok, r.status_code, json.loads(r.body)) for r in rows]

    async def drop_lines(self, batch_id: str) -> None:
        """Once the output files hold them, the rows are not needed."""
        async with self.db.session() as session:
            await session.execute(delete(BatchLine).where(BatchLine.batch_id == batch_id))


STAMPED = frozenset({"in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"})


def errors_of(batch: Batch) -> list[dict[str, Any]]:
    return list(json.loads(batch.errors)) if batch.errors else []


def metadata_of(batch: Batch) -> dict[str, str] | None:
    return dict(json.loads(batch.metadata_json)) if batch.metadata_json else None


def timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
