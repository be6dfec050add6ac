"""Eval suites and runs as wire objects (``protocol/evals.py``), from the service's records."""

from __future__ import annotations

from datetime import datetime

from ..evals.runs import EvalRunRecord
from ..evals.service import SuiteInfo
from ..protocol.evals import EvalError, EvalFamily, EvalProgress, EvalRunObject, EvalSuite


def suite_object(suite: SuiteInfo) -> EvalSuite:
    families = [EvalFamily(name=f.name, split=f.split, tasks=f.tasks) for f in suite.families]
    return EvalSuite(
        name=suite.name, description=suite.description, needs=list(suite.needs), tasks=suite.tasks, families=families
    )


def run_object(run: EvalRunRecord, *, results: bool = False) -> EvalRunObject:
    job = run.job
    error = None
    if job.status == "failed":
        error = EvalError(code=job.error_code or "job_failed", message=job.error_message or "the run failed")
    return EvalRunObject(
        id=run.id,
        status=job.status,  # type: ignore[arg-type]  # the job system's statuses
        suites=run.request.suites,
        models=run.request.models,
        per_family=run.request.per_family,
        split=run.request.split,
        seed=run.request.seed,
        progress=EvalProgress(**run.progress()),
        created_at=int(run.created_at.timestamp()),
        started_at=_seconds(job.started_at),
        finished_at=_seconds(job.finished_at),
        error=error,
        summaries=run.summaries,
        results=run.results if results else None,
    )


def _seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None
