"""Shared by the job tests: a clock the test moves, and waiting for a job to reach a status."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from openglm.jobs.store import JobRecord, JobStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def wait_for(store: JobStore, job_id: str, statuses: set[str], timeout: float = 10.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while True:
        job = await store.get(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job.status}, not {statuses}, after {timeout} s")
        await asyncio.sleep(0.05)


def lines(path: object) -> list[str]:
    from pathlib import Path

    file = Path(str(path))
    return file.read_text().splitlines() if file.exists() else []
