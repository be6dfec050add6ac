"""The job store on SQLite and PostgreSQL: claim order, concurrent claims, leases, cancellation, pausing, exhaustion."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from openglm.errors import NotFoundError
from openglm.jobs.store import WORKER_LOST, JobNotFinished, JobStateError, JobStore, LeaseLost
from openglm.store.db import Database
from openglm.store.models import Account

from . import sample_kinds  # noqa: F401  (registers the test kinds)
from .helpers import Clock

KINDS = ["test.noop"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: Database, clock: Clock) -> JobStore:
    return JobStore(database, clock=clock)


async def test_claims_take_the_highest_priority_then_the_oldest(store: JobStore, clock: Clock) -> None:
    submitted = {}
    for name, priority in [("a", 0), ("b", 5), ("c", 5), ("d", 0), ("e", -1), ("f", 9)]:
        submitted[(await store.submit("test.noop", {"name": name}, priority=priority)).id] = name
        clock.advance(1)
    order = []
    while (lease := await store.claim(KINDS, "w", 30)) is not None:
        order.append(submitted[lease.job_id])
    assert order == ["f", "b", "c", "a", "d", "e"]


async def test_claims_take_only_the_workers_kinds(store: JobStore) -> None:
    other = await store.submit("test.sleep", {})
    mine = await store.submit("test.noop", {})
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None and lease.job_id == mine.id
    assert await store.claim(KINDS, "w", 30) is None
    assert (await store.get(other.id)).status == "queued"


async def test_concurrent_claims_never_take_the_same_job(database: Database, db_url: str) -> None:
    """Eight claimers on four connections pools (on SQLite: four writers meeting in SQLite's own lock)."""
    ids = {(await JobStore(database).submit("test.noop", {})).id for _ in range(40)}
    pools = [Database(db_url) for _ in range(4)]

    async def drain(db: Database, worker: str) -> list[str]:
        store, taken = JobStore(db), []
        while (lease := await store.claim(KINDS, worker, 30)) is not None:
            taken.append(lease.job_id)
            await asyncio.sleep(0)
        return taken

    try:
        results = await asyncio.gather(*(drain(pools[i % 4], f"w{i}") for i in range(8)))
    finally:
        for db in pools:
            await db.close()
    taken = [job for result in results for job in result]
    assert sorted(taken) == sorted(ids)  # every job once, none twice
    assert sum(1 for result in results if result) > 1  # the claimers did run side by side


async def test_postgres_claims_skip_a_locked_row_instead_of_waiting(
    database: Database, db_url: str, db_kind: str
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serializes claims with BEGIN IMMEDIATE")
    store = JobStore(database)
    first = await store.submit("test.noop", {}, priority=1)
    second = await store.submit("test.noop", {})
    other = Database(db_url)
    try:
        async with other.engine.connect() as holder, holder.begin():
            await holder.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": first.id})
            lease = await asyncio.wait_for(store.claim(KINDS, "w", 30), 5)
            assert lease is not None and lease.job_id == second.id
    finally:
        await other.close()
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None and lease.job_id == first.id


async def test_a_worker_that_lost_its_lease_cannot_write_or_complete(store: JobStore, clock: Clock) -> None:
    job = await store.submit("test.noop", {})
    first = await store.claim(KINDS, "worker-a", 10)
    assert first is not None and first.attempt == 1
    assert await store.heartbeat(first, 10) is None
    clock.advance(11)  # worker-a stalled past its lease
    second = await store.claim(KINDS, "worker-b", 10)
    assert second is not None and second.job_id == job.id and second.attempt == 2

    assert await store.finish(first, "succeeded", result={"by": "a"}) is False
    for write in (
        store.heartbeat(first, 10),
        store.report(first, progress={"step": 9}),
        store.event(first, "late"),
        store.retry(first, code="x", message="y", delay_seconds=0),
    ):
        with pytest.raises(LeaseLost):
            await write
    assert await store.release(first) is False

    assert await store.finish(second, "succeeded", result={"by": "b"}) is True
    assert await store.finish(second, "succeeded", result={"by": "b again"}) is False  # completed once
    done = await store.get(job.id)
    assert (done.status, done.result, done.attempts, done.lease_owner) == ("succeeded", {"by": "b"}, 2, "worker-b")
    assert done.progress is None  # worker-a's late progress was not written


async def test_an_expired_claim_resumes_from_the_saved_checkpoint(store: JobStore, clock: Clock) -> None:
    await store.submit("test.noop", {"n": 1})
    first = await store.claim(KINDS, "a", 5)
    assert first is not None and first.checkpoint is None
    await store.report(first, progress={"step": 3}, checkpoint={"step": 3})
    clock.advance(6)
    second = await store.claim(KINDS, "b", 5)
    assert second is not None
    assert (second.checkpoint, second.job.progress, second.job.payload) == ({"step": 3}, {"step": 3}, {"n": 1})


async def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(store: JobStore, clock: Clock) -> None:
    job = await store.submit("test.noop", {}, max_attempts=2)
    for _ in range(2):
        assert await store.claim(KINDS, "doomed", 5) is not None
        clock.advance(6)  # the worker died: no heartbeat, the lease runs out
    assert await store.claim(KINDS, "next", 5) is None
    failed = await store.get(job.id)
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", WORKER_LOST, 2)
    assert failed.finished_at is not None


async def test_release_gives_the_job_back_without_using_an_attempt(store: JobStore) -> None:
    job = await store.submit("test.noop", {}, max_attempts=1)
    lease = await store.claim(KINDS, "closing", 30)
    assert lease is not None and await store.release(lease) is True
    assert (await store.get(job.id)).status == "queued"
    again = await store.claim(KINDS, "next", 30)  # at once, not after the lease
    assert again is not None and again.attempt == 1 and again.owner == "next"
    assert await store.finish(lease, "succeeded") is False  # the old token is dead


async def test_cancelling_a_queued_job_ends_it_at_once(store: JobStore) -> None:
    job = await store.submit("test.noop", {})
    cancelled = await store.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await store.claim(KINDS, "w", 30) is None
    assert [e.message for e in await store.events(job.id)] == ["job cancelled"]
    assert (await store.cancel(job.id)).status == "cancelled"  # again: nothing changes


async def test_cancelling_a_running_job_is_seen_by_its_holder(store: JobStore, clock: Clock) -> None:
    job = await store.submit("test.noop", {})
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None
    requested = await store.cancel(job.id)
    assert requested.status == "running" and requested.cancel_requested_at is not None
    assert await store.heartbeat(lease, 30) == "cancel"
    assert await store.report(lease, progress={"x": 1}) == "cancel"
    assert await store.finish(lease, "cancelled") is True
    assert [e.message for e in await store.events(job.id)] == ["cancellation requested", "job cancelled"]


async def test_a_paused_job_keeps_its_checkpoint_is_not_claimed_and_resumes_from_it(
    store: JobStore, clock: Clock
) -> None:
    job = await store.submit("test.noop", {})
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None
    await store.report(lease, checkpoint={"step": 4}, progress={"step": 5})
    requested = await store.pause(job.id)
    assert requested.status == "running" and requested.pause_requested_at is not None
    assert await store.heartbeat(lease, 30) == "pause"
    assert await store.event(lease, "step 6") == "pause"  # the holder learns it from any write
    assert await store.suspend(lease) is True
    paused = await store.get(job.id)
    assert (paused.status, paused.attempts, paused.lease_expires_at, paused.pause_requested_at) == (
        "paused",
        0,
        None,
        None,
    )
    assert not paused.finished and paused.progress == {"step": 5}
    clock.advance(100)
    assert await store.claim(KINDS, "w2", 30) is None  # a paused job is not claimed, whatever its lease said
    with pytest.raises(LeaseLost):
        await store.heartbeat(lease, 30)
    with pytest.raises(JobNotFinished):  # not finished: cancel it first
        await store.delete(job.id)

    assert (await store.resume(job.id)).status == "queued"
    again = await store.claim(KINDS, "w2", 30)
    assert again is not None and again.checkpoint == {"step": 4} and again.attempt == 1  # the pause cost no attempt
    assert await store.heartbeat(again, 30) is None
    messages = [e.message for e in await store.events(job.id)]
    assert messages == ["pause requested", "step 6", "job paused", "job resumed"]


async def test_pause_and_resume_refusals_and_shortcuts(store: JobStore, clock: Clock) -> None:
    queued = await store.submit("test.noop", {})
    assert (await store.pause(queued.id)).status == "paused"  # nobody holds it: paused at once
    assert (await store.pause(queued.id)).status == "paused"  # again: nothing changes
    with pytest.raises(JobStateError):
        await store.resume((await store.submit("test.noop", {})).id)  # queued, not paused
    assert (await store.cancel(queued.id)).status == "cancelled"  # a paused job is cancelled at once
    with pytest.raises(JobStateError):
        await store.pause(queued.id)  # finished
    with pytest.raises(NotFoundError):
        await store.pause(queued.id, account_id="someone-else")

    running = await store.submit("test.noop", {}, priority=5)
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None and lease.job_id == running.id
    await store.pause(running.id)
    withdrawn = await store.resume(running.id)  # before the worker acted on it: the pause is withdrawn
    assert withdrawn.status == "running" and withdrawn.pause_requested_at is None
    assert await store.heartbeat(lease, 30) is None
    await store.pause(running.id)
    clock.advance(31)  # its worker died while the pause was pending
    assert await store.claim(KINDS, "w2", 30) is not None  # the other queued job, not this one
    assert (await store.get(running.id)).status == "paused"


async def test_cancelling_a_running_job_whose_worker_is_gone_ends_it_at_once(store: JobStore, clock: Clock) -> None:
    job = await store.submit("test.noop", {})
    assert await store.claim(KINDS, "dead", 5) is not None
    clock.advance(6)
    assert (await store.cancel(job.id)).status == "cancelled"
    assert await store.claim(KINDS, "w", 5) is None


async def test_jobs_are_private_to_their_account(store: JobStore, database: Database) -> None:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    job = await store.submit("test.noop", {}, account_id="acct_a")
    assert (await store.get(job.id, account_id="acct_a")).id == job.id
    with pytest.raises(NotFoundError):
        await store.get(job.id, account_id="acct_b")
    with pytest.raises(NotFoundError):
        await store.cancel(job.id, account_id="acct_b")
    assert [j.id for j in await store.list_jobs(account_id="acct_a")] == [job.id]
    assert await store.list_jobs(account_id="acct_b") == []


async def test_events_are_numbered_in_order_and_polled_from_the_last_seen(store: JobStore) -> None:
    job = await store.submit("test.noop", {})
    lease = await store.claim(KINDS, "w", 30)
    assert lease is not None
    for index in range(5):
        await store.event(lease, f"step {index}", metrics={"loss": index / 10})
    first = await store.events(job.id, limit=3)
    rest = await store.events(job.id, after=first[-1].seq)
    assert [e.seq for e in first + rest] == [1, 2, 3, 4, 5]
    assert [e.message for e in first + rest] == [f"step {i}" for i in range(5)]
    assert rest[-1].metrics == {"loss": 0.4}
    with pytest.raises(ValueError, match="level"):
        await store.event(lease, "x", level="loud")
