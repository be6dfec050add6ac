"""Job kinds for the tests, registered on import (also by the worker processes the tests start, through
``--import tests.unit.jobs.sample_kinds``). Each one writes what it does to the file its payload names, so a test
can see every attempt's steps, also those of a process it killed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from openglm.jobs.context import JobContext, JobFailed
from openglm.jobs.kinds import job_kinds, lost_hooks
from openglm.jobs.store import JobRecord, JobStore


def record(path: str, line: str) -> None:
    with Path(path).open("a") as log:
        log.write(line + "\n")
        log.flush()


@job_kinds.register("test.steps")
async def steps(ctx: JobContext) -> dict[str, Any]:
    """``steps`` steps of ``step_seconds`` each, checkpointing after each; resumes from the last checkpoint."""
    path, total = ctx.payload["path"], int(ctx.payload["steps"])
    start = int((ctx.resume or {}).get("step", 0))
    record(path, f"start attempt={ctx.attempt} from={start}")
    for step in range(start, total):
        await asyncio.sleep(float(ctx.payload.get("step_seconds", 0)))
        record(path, f"step {step} attempt={ctx.attempt}")
        await ctx.checkpoint({"step": step + 1}, progress={"step": step + 1, "total": total})
    record(path, f"done attempt={ctx.attempt}")
    return {"steps": total, "attempt": ctx.attempt}


@job_kinds.register("test.sleep")
async def sleep(ctx: JobContext) -> None:
    """Waits without ever calling the context: only the runner's heartbeat can notice a cancellation."""
    record(ctx.payload["path"], f"sleeping attempt={ctx.attempt}")
    await asyncio.sleep(float(ctx.payload.get("seconds", 60)))


@job_kinds.register("test.events")
async def events(ctx: JobContext) -> dict[str, Any]:
    for index in range(int(ctx.payload["count"])):
        await ctx.event(f"step {index}", metrics={"step": index, "loss": 1.0 / (index + 1)})
        await asyncio.sleep(float(ctx.payload.get("pause", 0)))
    return {"count": ctx.payload["count"]}


@job_kinds.register("test.flaky")
async def flaky(ctx: JobContext) -> dict[str, Any]:
    """Fails (an unexpected error) on attempts before ``succeed_on``; ``permanent`` fails for good at once."""
    if ctx.payload.get("permanent"):
        raise JobFailed("the input is wrong", code="bad_input")
    if ctx.attempt < int(ctx.payload["succeed_on"]):
        raise RuntimeError(f"attempt {ctx.attempt} broke")
    return {"attempt": ctx.attempt}


@job_kinds.register("test.noop")
async def noop(ctx: JobContext) -> None:
    return None


@job_kinds.register("test.lost")
async def lost(ctx: JobContext) -> None:
    record(ctx.payload["path"], f"ran attempt={ctx.attempt}")


@lost_hooks.register("test.lost")
async def lost_hook(store: JobStore, job: JobRecord) -> None:
    """What a kind does for a job the system ended ``worker_lost`` (ingestion: marks its document failed)."""
    record(job.payload["path"], f"lost {job.status} {job.error_code} attempts={job.attempts}")
