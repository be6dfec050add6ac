"""The job system's queries: submit, claim (with a lease), renew, report, finish, release, cancel, read.

A claim is one write transaction: pick the highest-priority, oldest job of the worker's kinds that is queued (and
due) or running with an expired lease, then take it. On PostgreSQL the pick is ``SELECT … FOR UPDATE SKIP
LOCKED``, so concurrent claimers on any replica pass over each other's rows instead of queueing behind them; on
SQLite the transaction begins ``IMMEDIATE`` (``Database.session``), so only one claimer runs it at a time.

Taking a job increments ``attempts`` and writes the worker's ``lease_owner``: the pair is the claim's token.
Everything the holder writes afterwards (heartbeats, progress, checkpoints, events, the outcome) is conditional
on the token and on ``status = 'running'``; once another worker re-claimed the job (the lease expired), the
first one's writes touch no row and raise ``LeaseLost``, so a job is never completed twice.

Pausing: a queued job is ``paused`` at once; a running one gets ``pause_requested_at``, which its worker learns
from its next write (as it learns of a cancel) and acts on by ending the attempt ``paused`` (``suspend``: lease
cleared, the attempt not counted, the checkpoint kept). ``resume`` queues a paused job again; its next claim starts
from that checkpoint. A paused job is not finished: it is neither claimed nor deletable, and a cancel ends it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NotFoundError
from ..store.db import Database
from ..store.models import Job, JobEvent
from ..store.types import utcnow

STATUSES = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
UNFINISHED = ("queued", "running", "paused")
Phase = Literal["pending", "succeeded", "failed"]


def phase(status: str) -> Phase:
    """A job's status as a client waiting on its answer sees it (async results, file parsing tasks): pending
    (queued, running, paused), succeeded, or failed (failed or cancelled)."""
    if status == "succeeded":
        return "succeeded"
    return "failed" if status in FINISHED else "pending"


LEVELS = ("info", "warning", "error")
# Error codes of failures the job system itself decides (a handler's own errors carry their own codes).
WORKER_LOST = "worker_lost"  # every attempt's worker died (or lost its lease) before the job finished
INTERNAL = "internal_error"  # the handler raised an unexpected exception on its last attempt
Json = dict[str, Any]
# What a holder's write learns besides its own success: a stop someone asked for ("cancel" wins over "pause"), or
# None.
Stop = Literal["cancel", "pause"] | None


def new_job_id(prefix: str = "job") -> str:
    """The id of a job: a prefix (a kind's own, e.g. ``ftjob``) and 96 random bits. Every job id comes from here."""
    return f"{prefix}-{secrets.token_hex(12)}"


class JobNotFinished(Exception):
    """The job is queued or running: it cannot be removed yet."""


class LeaseLost(Exception):
    """The worker no longer holds the job: its lease expired and another worker claimed it, or it was finished."""


class JobStateError(Exception):
    """The job's status does not allow this now (pausing a finished job, resuming one that is not paused)."""


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    account_id: str | None
    status: str
    priority: int
    payload: Json
    result: Json | None
    error_code: str | None
    error_message: str | None
    progress: Json | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pause_requested_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class Lease:
    """A claimed job: the token (``owner``, ``attempt``) every write of the holder is conditional on, and what
    the handler starts from (the payload, the progress and checkpoint an earlier attempt saved)."""

    job: JobRecord
    owner: str
    attempt: int
    checkpoint: Json | None

    @property
    def job_id(self) -> str:
        return self.job.id


@dataclass(frozen=True)
class JobEventRecord:
    job_id: str
    seq: int
    created_at: datetime
    level: str
    message: str
    metrics: Json | None


def _dump(value: Json | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load(value: str | None) -> Json | None:
    return None if value is None else dict(json.loads(value))


def job_record(job: Job) -> JobRecord:
    return JobRecord(
        id=job.id,
        kind=job.kind,
        account_id=job.account_id,
        status=job.status,
        priority=job.priority,
        payload=_load(job.payload) or {},
        result=_load(job.result),
        error_code=job.error_code,
        error_message=job.error_message,
        progress=_load(job.progress),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        lease_owner=job.lease_owner,
        lease_expires_at=job.lease_expires_at,
        heartbeat_at=job.heartbeat_at,
        cancel_requested_at=job.cancel_requested_at,
        created_at=job.created_at,
        pause_requested_at=job.pause_requested_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _event_record(event: JobEvent) -> JobEventRecord:
    return JobEventRecord(
        job_id=event.job_id,
        seq=event.seq,
        created_at=event.created_at,
        level=event.level,
        message=event.message,
        metrics=_load(event.metrics),
    )


def _held(lease: Lease) -> ColumnElement[bool]:
    return and_(
        Job.id == lease.job_id,
        Job.lease_owner == lease.owner,
        Job.attempts == lease.attempt,
        Job.status == "running",
    )


class JobStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.clock = clock

    # --- submitting and reading ------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: Json | None = None,
        *,
        account_id: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        prefix: str = "job",
        job_id: str | None = None,
    ) -> JobRecord:
        async with self.db.session() as session:
            return self.add(
                session,
                kind,
                payload,
                account_id=account_id,
                priority=priority,
                max_attempts=max_attempts,
                prefix=prefix,
                job_id=job_id,
            )

    def add(
        self,
        session: AsyncSession,
        kind: str,
        payload: Json | None = None,
        *,
        account_id: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        prefix: str = "job",
        job_id: str | None = None,
    ) -> JobRecord:
        """``submit`` inside the caller's transaction: the job is queued if and only if the caller's other writes
        commit (a document and the job that ingests it)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be 1 or more")
        now = self.clock()
        job = Job(
            id=job_id or new_job_id(prefix),
            kind=kind,
            account_id=account_id,
            status="queued",
            priority=priority,
            payload=_dump(payload or {}),
            attempts=0,
            max_attempts=max_attempts,
            run_after=now,
            event_count=0,
            created_at=now,
        )
        session.add(job)
        return job_record(job)

    async def get(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """The job; with ``account_id``, only if that account owns it (another account's job is not found)."""
        async with self.db.read() as session:
            job = await session.get(Job, job_id)
        if job is None or (account_id is not None and job.account_id != account_id):
            raise NotFoundError(f"no job {job_id!r}")
        return job_record(job)

    async def list_jobs(
        self,
        *,
        account_id: str | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[JobRecord]:
        """Newest first; ``after``: the jobs listed after that one (a cursor: the last id of the previous page; an
        id the query does not list gives an empty page)."""
        query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        if account_id is not None:
            query = query.where(Job.account_id == account_id)
        if kinds is not None:
            query = query.where(Job.kind.in_(list(kinds)))
        async with self.db.read() as session:
            if after is not None:
                cursor = (await session.scalars(query.with_only_columns(Job.created_at).where(Job.id == after))).first()
                if cursor is None:
                    return []
                query = query.where(or_(Job.created_at < cursor, and_(Job.created_at == cursor, Job.id < after)))
            return [job_record(job) for job in (await session.scalars(query)).all()]

    async def unfinished(self, kind: str, *, account_id: str | None = None) -> list[JobRecord]:
        """The queued, running and paused jobs of a kind (of one account): e.g. to cancel those a deletion made
        moot."""
        query = select(Job).where(Job.kind == kind, Job.status.in_(UNFINISHED))
        if account_id is not None:
            query = query.where(Job.account_id == account_id)
        async with self.db.read() as session:
            return [job_record(job) for job in (await session.scalars(query.order_by(Job.created_at, Job.id))).all()]

    async def delete(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Remove a finished job and its events; a job not finished is refused (``JobNotFinished``): cancel it
        first, so that no worker is left writing for a job that is gone."""
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None or (account_id is not None and job.account_id != account_id):
                raise NotFoundError(f"no job {job_id!r}")
            record = job_record(job)
            if not record.finished:
                raise JobNotFinished(f"job {job_id} is {job.status}; cancel it, then delete it")
            await session.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
            await session.delete(job)
        return record

    async def events(self, job_id: str, *, after: int = 0, limit: int = 100) -> list[JobEventRecord]:
        """The job's events with ``seq`` above ``after``, in order: a client polls with the last seq it saw."""
        query = (
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after).order_by(JobEvent.seq).limit(limit)
        )
        async with self.db.read() as session:
            return [_event_record(event) for event in (await session.scalars(query)).all()]

    # --- claiming --------------------------------------------------------------------

    async def claim(
        self, kinds: Sequence[str], owner: str, lease_seconds: float, *, lost: list[JobRecord] | None = None
    ) -> Lease | None:
        """Take the next job of these kinds for ``owner`` until ``lease_seconds`` from now, or None if there is
        none. A picked job that was cancelled while its worker was away ends cancelled, and one whose workers
        died ``max_attempts`` times ends failed (``worker_lost``, appended to ``lost`` for the kind's hook:
        its handler never learns); the claim then looks for the next."""
        if not kinds:
            return None
        while True:
            now = self.clock()
            async with self.db.session() as session:
                job = await self._pick(session, list(kinds), now)
                if job is None:
                    return None
                if job.cancel_requested_at is not None:
                    self._end(session, job, "cancelled", now)
                    continue
                if job.pause_requested_at is not None:  # its worker died while pausing: paused, as asked
                    self._pause(session, job, now)
                    continue
                if job.status == "running" and job.attempts >= job.max_attempts:
                    error = f"the job's worker stopped before it finished, {job.attempts} times"
                    self._end(session, job, "failed", now, code=WORKER_LOST, message=error)
                    if lost is not None:
                        lost.append(job_record(job))
                    continue
                job.status = "running"
                job.attempts += 1
                job.lease_owner = owner
                job.lease_expires_at = now + timedelta(seconds=lease_seconds)
                job.heartbeat_at = now
                job.started_at = job.started_at or now
                return Lease(job_record(job), owner, job.attempts, _load(job.checkpoint))

    async def _pick(self, session: AsyncSession, kinds: list[str], now: datetime) -> Job | None:
        due = or_(
            and_(Job.status == "queued", Job.run_after <= now),
            and_(Job.status == "running", Job.lease_expires_at < now),
        )
        query = (
            select(Job).where(Job.kind.in_(kinds), due).order_by(Job.priority.desc(), Job.created_at, Job.id).limit(1)
        )
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return (await session.scalars(query)).first()

    def _end(
        self,
        session: AsyncSession,
        job: Job,
        status: str,
        now: datetime,
        *,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        job.status = status
        job.finished_at = now
        job.lease_expires_at = None
        job.pause_requested_at = None
        job.error_code = code
        job.error_message = message
        level = "info" if status != "failed" else "error"
        self._add_event(session, job, now, level, message or f"job {status}", None)

    def _add_event(
        self, session: AsyncSession, job: Job, now: datetime, level: str, message: str, metrics: Json | None
    ) -> None:
        job.event_count += 1
        session.add(
            JobEvent(
                job_id=job.id, seq=job.event_count, created_at=now, level=level, message=message, metrics=_dump(metrics)
            )
        )

    # --- the holder's writes ----------------------------------------------------------

    async def heartbeat(self, lease: Lease, lease_seconds: float) -> Stop:
        """Renew the lease; the stop requested, if any. Raises ``LeaseLost``."""
        now = self.clock()
        return await self._held_update(lease, heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))

    async def report(self, lease: Lease, *, progress: Json | None = None, checkpoint: Json | None = None) -> Stop:
        """Save progress (shown to clients) and/or a checkpoint (what a later attempt resumes from); the stop
        requested, if any. Raises ``LeaseLost``."""
        values: dict[str, Any] = {}
        if progress is not None:
            values["progress"] = _dump(progress)
        if checkpoint is not None:
            values["checkpoint"] = _dump(checkpoint)
        if not values:
            values["heartbeat_at"] = self.clock()
        return await self._held_update(lease, **values)

    async def _held_update(self, lease: Lease, **values: Any) -> Stop:
        statement = (
            update(Job).where(_held(lease)).values(**values).returning(Job.cancel_requested_at, Job.pause_requested_at)
        )
        async with self.db.writing() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            raise LeaseLost(f"job {lease.job_id} is no longer held by {lease.owner} (attempt {lease.attempt})")
        return _stop(row[0], row[1])

    async def event(self, lease: Lease, message: str, *, level: str = "info", metrics: Json | None = None) -> Stop:
        """Append an event (numbered in order); the stop requested, if any. Raises ``LeaseLost``."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        now = self.clock()
        statement = (
            update(Job)
            .where(_held(lease))
            .values(event_count=Job.event_count + 1)
            .returning(Job.event_count, Job.cancel_requested_at, Job.pause_requested_at)
        )
        async with self.db.writing() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                raise LeaseLost(f"job {lease.job_id} is no longer held by {lease.owner} (attempt {lease.attempt})")
            await connection.execute(
                insert(JobEvent).values(
                    job_id=lease.job_id,
                    seq=row[0],
                    created_at=now,
                    level=level,
                    message=message,
                    metrics=_dump(metrics),
                )
            )
        return _stop(row[1], row[2])

    async def finish(
        self,
        lease: Lease,
        status: str,
        *,
        result: Json | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> bool:
        """End the job (succeeded, failed or cancelled) if ``lease`` still holds it; False if it does not (the
        job was re-claimed by another worker, which alone may end it)."""
        if status not in FINISHED:
            raise ValueError(f"a job ends succeeded, failed or cancelled, not {status!r}")
        now = self.clock()
        async with self.db.session() as session:
            job = await self._held_job(session, lease)
            if job is None:
                return False
            job.result = _dump(result)
            self._end(session, job, status, now, code=code, message=message)
        return True

    async def suspend(self, lease: Lease) -> bool:
        """End the attempt ``paused``, as a pause asked (the handler stopped, its checkpoint kept): the lease is
        cleared and the attempt not counted against ``max_attempts``; ``resume`` queues the job again. False if
        ``lease`` no longer holds the job."""
        async with self.db.session() as session:
            job = await self._held_job(session, lease)
            if job is None:
                return False
            job.attempts -= 1
            self._pause(session, job, self.clock())
        return True

    def _pause(self, session: AsyncSession, job: Job, now: datetime) -> None:
        job.status = "paused"
        job.pause_requested_at = None
        job.lease_expires_at = None
        self._add_event(session, job, now, "info", "job paused", None)

    async def retry(self, lease: Lease, *, code: str, message: str, delay_seconds: float) -> str:
        """After a failed attempt: queued again after ``delay_seconds`` while attempts remain, else failed. The
        status it left the job in; raises ``LeaseLost``."""
        now = self.clock()
        async with self.db.session() as session:
            job = await self._held_job(session, lease)
            if job is None:
                raise LeaseLost(f"job {lease.job_id} is no longer held by {lease.owner} (attempt {lease.attempt})")
            if job.attempts >= job.max_attempts:
                self._end(session, job, "failed", now, code=code, message=message)
                return "failed"
            if job.pause_requested_at is not None:  # asked to pause: the retry waits for a resume
                self._add_event(session, job, now, "warning", f"attempt {job.attempts} failed: {message}", None)
                self._pause(session, job, now)
                return "paused"
            job.status = "queued"
            job.lease_expires_at = None
            job.run_after = now + timedelta(seconds=delay_seconds)
            self._add_event(session, job, now, "warning", f"attempt {job.attempts} failed, retrying: {message}", None)
            return "queued"

    async def release(self, lease: Lease) -> bool:
        """Give the job back unfinished (this worker is shutting down): queued again at once, and the attempt is
        not counted against ``max_attempts``. The token stays unique: the next claim has another owner."""
        async with self.db.session() as session:
            job = await self._held_job(session, lease)
            if job is None:
                return False
            job.attempts -= 1
            if job.pause_requested_at is not None:  # asked to pause before the worker stopped: paused
                self._pause(session, job, self.clock())
                return True
            job.status = "queued"
            job.lease_expires_at = None
            job.run_after = self.clock()
        return True

    @contextlib.asynccontextmanager
    async def holding(self, lease: Lease) -> AsyncIterator[tuple[AsyncSession, JobRecord]]:
        """A write transaction with the job's row locked, while ``lease`` holds the job: for a handler's writes
        that must commit with the job's state and never twice (a charge, with the progress that records it).
        Raises ``LeaseLost`` (nothing written) when another worker holds the job now."""
        async with self.db.session() as session:
            job = await self._held_job(session, lease)
            if job is None:
                raise LeaseLost(f"job {lease.job_id} is no longer held by {lease.owner} (attempt {lease.attempt})")
            yield session, job_record(job)

    async def set_progress(
        self, session: AsyncSession, job_id: str, progress: Json, *, checkpoint: Json | None = None
    ) -> None:
        """Replace the progress (and the checkpoint, if given) inside ``holding``'s transaction."""
        values: dict[str, Any] = {"progress": _dump(progress)}
        if checkpoint is not None:
            values["checkpoint"] = _dump(checkpoint)
        await session.execute(update(Job).where(Job.id == job_id).values(**values))

    async def _held_job(self, session: AsyncSession, lease: Lease) -> Job | None:
        query = select(Job).where(_held(lease))
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        return (await session.scalars(query)).first()

    # --- cancelling ------------------------------------------------------------------

    async def cancel(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Request cancellation. A queued or paused job (or a running one whose worker is gone) ends cancelled at
        once; a running one is stopped by its worker at the worker's next heartbeat or report. A finished job is
        left as it is. The job as it now stands."""
        now = self.clock()
        async with self.db.session() as session:
            job = await self._locked(session, job_id, account_id)
            if job.status not in FINISHED and job.cancel_requested_at is None:
                job.cancel_requested_at = now
                abandoned = job.status == "running" and job.lease_expires_at is not None and job.lease_expires_at < now
                if job.status in ("queued", "paused") or abandoned:
                    self._end(session, job, "cancelled", now)
                else:
                    self._add_event(session, job, now, "info", "cancellation requested", None)
            return job_record(job)

    # --- pausing ---------------------------------------------------------------------

    async def pause(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Pause the job: a queued one (or a running one whose worker is gone) is paused at once; a running one is
        stopped by its worker at the worker's next heartbeat or report, keeping its checkpoint. Pausing a paused
        job changes nothing; a finished one (or one being cancelled) cannot be paused (``JobStateError``)."""
        now = self.clock()
        async with self.db.session() as session:
            job = await self._locked(session, job_id, account_id)
            if job.status in FINISHED or job.cancel_requested_at is not None:
                raise JobStateError(f"job {job_id} is {job.status}; only a queued or running job can be paused")
            abandoned = job.status == "running" and job.lease_expires_at is not None and job.lease_expires_at < now
            if job.status == "queued" or abandoned:
                self._pause(session, job, now)
            elif job.status == "running" and job.pause_requested_at is None:
                job.pause_requested_at = now
                self._add_event(session, job, now, "info", "pause requested", None)
            return job_record(job)

    async def resume(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Queue a paused job again (its next claim resumes from its checkpoint); a running job whose pause has
        not taken effect yet keeps running (the request is withdrawn). Anything else: ``JobStateError``."""
        now = self.clock()
        async with self.db.session() as session:
            job = await self._locked(session, job_id, account_id)
            if job.status == "paused":
                job.status = "queued"
                job.run_after = now
                self._add_event(session, job, now, "info", "job resumed", None)
            elif job.status == "running" and job.pause_requested_at is not None:
                job.pause_requested_at = None
                self._add_event(session, job, now, "info", "pause withdrawn", None)
            else:
                raise JobStateError(f"job {job_id} is {job.status}; only a paused job can be resumed")
            return job_record(job)

    async def _locked(self, session: AsyncSession, job_id: str, account_id: str | None) -> Job:
        query = select(Job).where(Job.id == job_id)
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        job = (await session.scalars(query)).first()
        if job is None or (account_id is not None and job.account_id != account_id):
            raise NotFoundError(f"no job {job_id!r}")
        return job


def _stop(cancel_requested_at: datetime | None, pause_requested_at: datetime | None) -> Stop:
    if cancel_requested_at is not None:
        return "cancel"
    return "pause" if pause_requested_at is not None else None
