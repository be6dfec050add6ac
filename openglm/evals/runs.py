"""Eval runs started through the API: the ``eval_runs`` rows (what was asked, the run's key while it lives, the report
once it ended) read together with their ``eval_run`` jobs (status, progress, error), private to their account.

A run's id is its job's id. The row and the job are written in one transaction (``create``), so neither exists
without the other. Another account's run is not found (404), as a run that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from ..errors import NotFoundError
from ..jobs.store import JobRecord, JobStore, Lease, job_record
from ..store.db import Database
from ..store.models import EvalRun, Job
from ..store.types import utcnow


@dataclass(frozen=True)
class RunRequest:
    """What a run was asked to do."""

    suites: list[str]
    models: list[str]
    split: str | None = None
    per_family: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class EvalRunRecord:
    id: str
    account_id: str
    request: RunRequest
    total_tasks: int
    key_id: str | None
    created_at: datetime
    job: JobRecord
    summaries: dict[str, Any] | None = None  # suite → model → summary, once the run succeeded
    results: dict[str, Any] | None = None  # suite → model → outcomes (read by ``get`` only, not when listing)

    @property
    def status(self) -> str:
        return self.job.status

    def progress(self) -> dict[str, int]:
        """Tasks done (and failed) of the total, as the job last reported; 0 done before it started."""
        saved = self.job.progress or {}
        return {
            "done": int(saved.get("done", 0)),
            "failed": int(saved.get("failed", 0)),
            "total": int(saved.get("total", self.total_tasks)),
        }


class EvalRuns:
    def __init__(self, db: Database):
        self.db = db

    async def add(self, session: AsyncSession, job: JobRecord, request: RunRequest, total: int) -> None:
        """The row of ``job``'s run (``JobStore.add`` in the same transaction: neither is written without the
        other)."""
        assert job.account_id is not None
        await session.flush()  # the job's row first: the run's refers to it
        session.add(
            EvalRun(
                id=job.id,
                account_id=job.account_id,
                suites=json.dumps(request.suites),
                models=json.dumps(request.models),
                split=request.split,
                per_family=request.per_family,
                seed=request.seed,
                total_tasks=total,
                created_at=utcnow(),
            )
        )

    async def get(self, run_id: str, *, account_id: str | None = None) -> EvalRunRecord:
        """The run; with ``account_id``, only if that account owns it (``NotFoundError`` otherwise)."""
        query = select(EvalRun, Job).join(Job, Job.id == EvalRun.id).where(EvalRun.id == run_id)
        async with self.db.read() as session:
            row = (await session.execute(query)).first()
        if row is None or (account_id is not None and row[0].account_id != account_id):
            raise NotFoundError(f"no eval run {run_id!r}")
        return _record(row[0], row[1])

    async def list_runs(self, account_id: str, *, limit: int = 20, after: str | None = None) -> list[EvalRunRecord]:
        """The account's runs, newest first; ``after``: those listed after that run (a cursor, as fine-tuning's)."""
        query = (
            select(EvalRun, Job)
            .join(Job, Job.id == EvalRun.id)
            .where(EvalRun.account_id == account_id)
            .order_by(EvalRun.created_at.desc(), EvalRun.id.desc())
            .limit(limit)
            .options(defer(EvalRun.results))
        )
        async with self.db.read() as session:
            if after is not None:
                cursor = (
                    await session.scalars(
                        select(EvalRun.created_at).where(EvalRun.id == after, EvalRun.account_id == account_id)
                    )
                ).first()
                if cursor is None:
                    return []
                query = query.where(
                    or_(EvalRun.created_at < cursor, and_(EvalRun.created_at == cursor, EvalRun.id < after))
                )
            rows = (await session.execute(query)).all()
        return [_record(run, job, with_results=False) for run, job in rows]

    async def set_key(self, run_id: str, key_id: str | None) -> None:
        async with self.db.session() as session:
            await session.execute(update(EvalRun).where(EvalRun.id == run_id).values(key_id=key_id))

    async def save_report(
        self, jobs: JobStore, lease: Lease, summaries: dict[str, Any], results: dict[str, Any], progress: dict[str, Any]
    ) -> None:
        """The report and the final progress, written only while ``lease`` holds the job (``LeaseLost`` otherwise:
        a worker that lost the job writes nothing)."""
        async with jobs.holding(lease) as (session, _job):
            values = {"summaries": _dump(summaries), "results": _dump(results)}
            await session.execute(update(EvalRun).where(EvalRun.id == lease.job_id).values(**values))
            await jobs.set_progress(session, lease.job_id, progress)


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load(text: str | None) -> dict[str, Any] | None:
    return dict(json.loads(text)) if text else None


def _record(run: EvalRun, job: Job, *, with_results: bool = True) -> EvalRunRecord:
    request = RunRequest(
        suites=list(json.loads(run.suites)),
        models=list(json.loads(run.models)),
        split=run.split,
        per_family=run.per_family,
        seed=run.seed,
    )
    return EvalRunRecord(
        run.id,
        run.account_id,
        request,
        run.total_tasks,
        run.key_id,
        run.created_at,
        job_record(job),
        summaries=_load(run.summaries),
        results=_load(run.results) if with_results else None,
    )
