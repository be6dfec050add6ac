"""A worker process killed with SIGKILL mid-job: once its lease expires another worker takes the job, resumes it
from its last checkpoint and finishes it exactly once. Also: SIGTERM gives the job back at once, and the CLI
names the worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from openglm.cli import build_parser
from openglm.jobs.runner import JobRunner
from openglm.jobs.store import JobStore
from openglm.store.db import Database

from . import sample_kinds  # noqa: F401  (registers the test kinds)
from .helpers import lines, wait_for

ROOT = Path(__file__).resolve().parents[3]
LEASE = 1.5


@pytest.fixture
def start_worker(db_url: str, tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OPENGLM_DATABASE_URL": db_url,
            "OPENGLM_DATA_DIR": str(tmp_path / "data"),
            "OPENGLM_JOB_LEASE_SECONDS": str(LEASE),
            "OPENGLM_JOB_HEARTBEAT_SECONDS": "0.3",
            "OPENGLM_JOB_POLL_SECONDS": "0.1",
        }
        command = [sys.executable, "-m", "openglm.jobs.worker", "--import", "tests.unit.jobs.sample_kinds"]
        process = subprocess.Popen([*command, "--kinds", "test.steps", "--slots", "1"], env=env, cwd=ROOT)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


async def wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(lines(path)) < count:
        assert process.poll() is None, f"the worker exited with {process.returncode}"
        assert time.monotonic() < deadline, f"the worker wrote {lines(path)}"
        await asyncio.sleep(0.02)


async def checkpoint_of(database: Database, job_id: str) -> int:
    async with database.engine.connect() as connection:
        saved = (await connection.execute(text("SELECT checkpoint FROM jobs WHERE id = :id"), {"id": job_id})).scalar()
    import json

    return int(json.loads(saved)["step"]) if saved else 0


async def test_a_killed_worker_s_job_finishes_once_elsewhere_from_its_checkpoint(
    database: Database, start_worker: object, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    store = JobStore(database)
    job = await store.submit("test.steps", {"path": str(log), "steps": 10, "step_seconds": 0.15})
    worker = start_worker()  # type: ignore[operator]
    await wait_for_lines(log, 4, worker)  # started and three steps done
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    resume_from = await checkpoint_of(database, job.id)
    assert resume_from >= 2
    assert (await store.get(job.id)).status == "running"  # held by a dead worker until its lease runs out

    other = JobRunner(store, slots=1, lease_seconds=LEASE, heartbeat_seconds=0.3, poll_seconds=0.1)
    await other.start()
    try:
        done = await wait_for(store, job.id, {"succeeded", "failed", "cancelled"}, timeout=30)
    finally:
        await other.close()
    assert done.status == "succeeded" and done.result == {"steps": 10, "attempt": 2} and done.attempts == 2
    assert done.lease_owner == other.owner

    written = lines(log)
    second = written.index(f"start attempt=2 from={resume_from}")
    first_steps = [line for line in written[:second] if line.startswith("step")]
    # The first worker did every step up to its checkpoint (and perhaps one more it had not checkpointed).
    assert first_steps[:resume_from] == [f"step {i} attempt=1" for i in range(resume_from)]
    assert len(first_steps) - resume_from in (0, 1)
    assert written[second + 1 :] == [f"step {i} attempt=2" for i in range(resume_from, 10)] + ["done attempt=2"]
    assert sum(line.startswith("done") for line in written) == 1
    events = [e.message for e in await store.events(job.id)]
    assert events == ["job succeeded"]  # one outcome


async def test_sigterm_gives_the_job_back_at_once(database: Database, start_worker: object, tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    store = JobStore(database)
    job = await store.submit("test.steps", {"path": str(log), "steps": 200, "step_seconds": 0.05})
    worker = start_worker()  # type: ignore[operator]
    await wait_for_lines(log, 3, worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    released = await store.get(job.id)
    assert (released.status, released.attempts) == ("queued", 0)


def test_the_cli_runs_a_worker() -> None:
    args = build_parser().parse_args(["jobs", "work", "--kinds", "a,b", "--import", "x.y", "--slots", "3"])
    assert (args.kinds, args.modules, args.slots) == ("a,b", ["x.y"], 3)
    assert args.func.__module__ == "openglm.jobs.worker"
