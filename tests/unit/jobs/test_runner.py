"""The runner on SQLite and PostgreSQL: results, cancellation of running jobs within seconds, pausing and resuming
from the checkpoint, events polled while a job runs, retries, a lost lease, and a restarted server resuming jobs from
their checkpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from openglm.config import Settings
from openglm.jobs import runner as runner_module
from openglm.jobs.runner import JobRunner
from openglm.jobs.store import INTERNAL, JobStore
from openglm.store.db import Database

from . import sample_kinds  # noqa: F401  (registers the test kinds)
from .helpers import lines, wait_for

FAST = {"lease_seconds": 1.0, "heartbeat_seconds": 0.2, "poll_seconds": 0.1}
RunnerFactory = Callable[..., JobRunner]


@pytest.fixture
async def runners(database: Database) -> AsyncIterator[RunnerFactory]:
    started: list[JobRunner] = []

    def make(**options: object) -> JobRunner:
        runner = JobRunner(JobStore(database), **{**FAST, "slots": 2, **options})  # type: ignore[arg-type]
        started.append(runner)
        return runner

    yield make
    for runner in started:
        await runner.close()


async def test_a_job_runs_to_its_result(runners: RunnerFactory, tmp_path: Path) -> None:
    runner = runners()
    await runner.start()
    job = await runner.submit("test.steps", {"path": str(tmp_path / "log"), "steps": 3})
    done = await wait_for(runner.store, job.id, {"succeeded"})
    assert done.result == {"steps": 3, "attempt": 1}
    assert done.progress == {"step": 3, "total": 3}
    assert lines(tmp_path / "log") == ["start attempt=1 from=0", "step 0 attempt=1", "step 1 attempt=1",
                                       "step 2 attempt=1", "done attempt=1"]  # fmt: skip


async def test_cancelling_a_running_job_from_another_process_stops_it_within_seconds(
    runners: RunnerFactory, database: Database, db_url: str, tmp_path: Path
) -> None:
    """The handler never calls its context; the runner's heartbeat sees the request and stops it."""
    runner = runners()
    await runner.start()
    job = await runner.submit("test.sleep", {"path": str(tmp_path / "log"), "seconds": 60})
    await wait_for(runner.store, job.id, {"running"})
    elsewhere = Database(db_url)  # the API replica that got the cancel request
    try:
        asked = time.monotonic()
        await JobStore(elsewhere).cancel(job.id)
        cancelled = await wait_for(runner.store, job.id, {"cancelled", "failed", "succeeded"}, timeout=5)
        took = time.monotonic() - asked
    finally:
        await elsewhere.close()
    assert cancelled.status == "cancelled"
    assert took < 2.0, f"cancellation took {took:.2f} s"
    assert runner.running == []


async def test_cancelling_through_the_runner_that_runs_it_is_immediate(runners: RunnerFactory, tmp_path: Path) -> None:
    runner = runners(heartbeat_seconds=0.4)
    await runner.start()
    job = await runner.submit("test.sleep", {"path": str(tmp_path / "log"), "seconds": 60})
    await wait_for(runner.store, job.id, {"running"})
    asked = time.monotonic()
    await runner.cancel(job.id)
    assert (await wait_for(runner.store, job.id, {"cancelled"}, timeout=2)).status == "cancelled"
    assert time.monotonic() - asked < 0.4  # before the next heartbeat


async def test_a_cooperative_handler_is_cancelled_at_its_next_report(
    runners: RunnerFactory, database: Database, tmp_path: Path
) -> None:
    runner = runners(heartbeat_seconds=0.5, lease_seconds=5)
    await runner.start()
    job = await runner.submit("test.steps", {"path": str(tmp_path / "log"), "steps": 1000, "step_seconds": 0.02})
    await wait_for(runner.store, job.id, {"running"})
    await JobStore(database).cancel(job.id)
    assert (await wait_for(runner.store, job.id, {"cancelled"}, timeout=2)).status == "cancelled"
    assert "done attempt=1" not in lines(tmp_path / "log")


async def test_a_paused_job_stops_after_its_next_checkpoint_and_resumes_from_it(
    runners: RunnerFactory, database: Database, db_url: str, tmp_path: Path
) -> None:
    """Paused from another process: the handler stops at its next step (the checkpoint written, then JobPaused),
    the job waits ``paused`` (claimed by no slot), and a resume runs the remaining steps: each step once in all."""
    log = tmp_path / "log"
    runner = runners(heartbeat_seconds=0.5, lease_seconds=5)
    await runner.start()
    job = await runner.submit("test.steps", {"path": str(log), "steps": 40, "step_seconds": 0.03})
    while len(lines(log)) < 4:
        await asyncio.sleep(0.02)
    elsewhere = Database(db_url)
    try:
        await JobStore(elsewhere).pause(job.id)
    finally:
        await elsewhere.close()
    paused = await wait_for(runner.store, job.id, {"paused", "succeeded", "failed"}, timeout=3)
    assert paused.status == "paused" and paused.attempts == 0 and runner.running == []
    stopped_at = int((paused.progress or {})["step"])
    assert 3 <= stopped_at < 40 and f"step {stopped_at} attempt=1" not in lines(log)
    await asyncio.sleep(0.5)  # idle slots poll: none takes a paused job
    assert (await runner.store.get(job.id)).status == "paused"

    assert (await runner.resume(job.id)).status == "queued"
    done = await wait_for(runner.store, job.id, {"succeeded"}, timeout=10)
    assert done.result == {"steps": 40, "attempt": 1}  # the pause cost no attempt
    steps = [line.split()[1] for line in lines(log) if line.startswith("step ")]
    assert steps == [str(i) for i in range(40)]  # every step once: none lost, none repeated
    assert f"start attempt=1 from={stopped_at}" in lines(log)


async def test_a_handler_that_never_reports_is_stopped_after_the_pause_grace(
    runners: RunnerFactory, tmp_path: Path
) -> None:
    runner = runners(pause_grace_seconds=0.3)
    await runner.start()
    job = await runner.submit("test.sleep", {"path": str(tmp_path / "log"), "seconds": 60})
    await wait_for(runner.store, job.id, {"running"})
    asked = time.monotonic()
    await runner.pause(job.id)
    assert (await wait_for(runner.store, job.id, {"paused"}, timeout=3)).status == "paused"
    assert 0.25 < time.monotonic() - asked < 2.0
    assert (await runner.cancel(job.id)).status == "cancelled"  # a paused job is cancelled at once


async def test_events_are_ordered_and_pollable_while_the_job_runs(runners: RunnerFactory) -> None:
    runner = runners()
    await runner.start()
    job = await runner.submit("test.events", {"count": 12, "pause": 0.02})
    seen, last = [], 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = await runner.store.events(job.id, after=last)
        seen.extend(batch)
        last = batch[-1].seq if batch else last
        if (await runner.store.get(job.id)).finished and not batch:
            break
        await asyncio.sleep(0.03)
    assert [e.seq for e in seen] == list(range(1, 14))
    assert [e.message for e in seen] == [f"step {i}" for i in range(12)] + ["job succeeded"]
    assert seen[3].metrics == {"step": 3, "loss": 0.25}


async def test_an_unexpected_error_is_retried_and_a_permanent_one_is_not(
    runners: RunnerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RETRY_BASE_SECONDS", 0.0)
    runner = runners()
    await runner.start()
    flaky = await runner.submit("test.flaky", {"succeed_on": 2})
    broken = await runner.submit("test.flaky", {"succeed_on": 9}, max_attempts=2)
    permanent = await runner.submit("test.flaky", {"permanent": True})
    assert (await wait_for(runner.store, flaky.id, {"succeeded"})).result == {"attempt": 2}
    failed = await wait_for(runner.store, broken.id, {"failed"})
    assert (failed.error_code, failed.attempts) == (INTERNAL, 2)
    assert failed.error_message == "RuntimeError: attempt 2 broke"
    refused = await wait_for(runner.store, permanent.id, {"failed"})
    assert (refused.error_code, refused.error_message, refused.attempts) == ("bad_input", "the input is wrong", 1)


async def test_a_runner_that_lost_its_lease_stops_and_writes_nothing(
    runners: RunnerFactory, database: Database, tmp_path: Path
) -> None:
    runner = runners()
    await runner.start()
    job = await runner.submit("test.sleep", {"path": str(tmp_path / "log"), "seconds": 60})
    await wait_for(runner.store, job.id, {"running"})
    # Another worker took it over (as after a stall past the lease): a new owner and attempt.
    async with database.writing() as connection:
        await connection.execute(
            text("UPDATE jobs SET lease_owner = 'thief', attempts = attempts + 1 WHERE id = :id"), {"id": job.id}
        )
    deadline = time.monotonic() + 3
    while runner.running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert runner.running == []
    taken = await runner.store.get(job.id)
    assert (taken.status, taken.lease_owner, taken.attempts) == ("running", "thief", 2)


async def test_a_restarted_server_resumes_jobs_whose_worker_died(
    database: Database, db_url: str, runners: RunnerFactory, tmp_path: Path
) -> None:
    """The first server claimed the job, got to step 2 and died (no release). The next one takes the job over once
    the lease expires and its handler resumes from step 2."""
    log = tmp_path / "log"
    job = await JobStore(database).submit("test.steps", {"path": str(log), "steps": 4})
    first_server = Database(db_url)
    store = JobStore(first_server)
    lease = await store.claim(["test.steps"], "server-1", 1.0)
    assert lease is not None
    await store.report(lease, checkpoint={"step": 2}, progress={"step": 2, "total": 4})
    await first_server.close()  # gone, holding the lease

    restarted = runners()
    await restarted.start()
    done = await wait_for(restarted.store, job.id, {"succeeded"}, timeout=10)
    assert done.result == {"steps": 4, "attempt": 2}
    assert lines(log) == ["start attempt=2 from=2", "step 2 attempt=2", "step 3 attempt=2", "done attempt=2"]


async def test_a_server_that_stops_gives_its_jobs_to_the_next_at_once(runners: RunnerFactory, tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = runners(lease_seconds=60, heartbeat_seconds=1)
    await first.start()
    job = await first.submit("test.steps", {"path": str(log), "steps": 60, "step_seconds": 0.01})
    while len(lines(log)) < 5:
        await asyncio.sleep(0.02)
    await first.close()
    released = await first.store.get(job.id)
    assert (released.status, released.attempts) == ("queued", 0)
    checkpoint = released.progress["step"] if released.progress else 0

    second = runners(lease_seconds=60, heartbeat_seconds=1)
    await second.start()
    done = await wait_for(second.store, job.id, {"succeeded"}, timeout=20)  # long before the 60 s lease
    assert done.result == {"steps": 60, "attempt": 1}
    assert f"start attempt=1 from={checkpoint}" in lines(log)
    assert lines(log).count("done attempt=1") == 1


async def test_a_kind_with_slots_of_its_own_is_not_held_back_by_long_jobs(
    runners: RunnerFactory, tmp_path: Path
) -> None:
    """Ingestion's case: the shared slot is held by a long job (fine-tuning); a kind with its own slot still runs.
    (Before own slots, the short job waited for the long one.)"""
    runner = runners(slots=1, kind_slots={"test.noop": 1})
    await runner.start()
    long = await runner.submit("test.sleep", {"path": str(tmp_path / "log"), "seconds": 60})
    await wait_for(runner.store, long.id, {"running"})
    short = await runner.submit("test.noop")
    assert (await wait_for(runner.store, short.id, {"succeeded"}, timeout=5)).status == "succeeded"
    assert (await runner.store.get(long.id)).status == "running"


async def test_a_job_whose_workers_all_died_runs_its_kind_s_lost_hook(
    database: Database, runners: RunnerFactory, tmp_path: Path
) -> None:
    """The claim ends it ``worker_lost`` without calling the handler; the runner calls the kind's hook, so the
    kind can mark what the job was doing failed (an ingestion's document) instead of leaving it in progress."""
    log = tmp_path / "log"
    store = JobStore(database)
    job = await store.submit("test.lost", {"path": str(log)}, max_attempts=1)
    assert await store.claim(["test.lost"], "a-worker-that-dies", 0.05) is not None
    await asyncio.sleep(0.1)
    runner = runners()
    await runner.start()
    done = await wait_for(store, job.id, {"failed"})
    assert done.error_code == "worker_lost"
    for _ in range(50):
        if lines(log):
            break
        await asyncio.sleep(0.05)
    assert lines(log) == ["lost failed worker_lost attempts=1"]


def test_heartbeats_must_fit_the_lease_twice() -> None:
    with pytest.raises(ValueError, match="half"):
        Settings(job_lease_seconds=3, job_heartbeat_seconds=2)
    with pytest.raises(ValueError, match="twice"):
        JobRunner(None, lease_seconds=1, heartbeat_seconds=0.6)  # type: ignore[arg-type]


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown job kind 'nope'; known: .*test\.steps"):
        JobRunner(None, kinds=["nope"])  # type: ignore[arg-type]
