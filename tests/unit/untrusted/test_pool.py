"""The worker pool: calls run in other processes, a call past its deadline or its memory is stopped (and its
worker replaced), a crash costs only that call, errors keep their meaning, and a reply can only be plain data."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import AsyncIterator

import pytest

from openglm.errors import DocumentError, InternalError, InvalidFieldError
from openglm.untrusted.pool import UntrustedPool, WorkLimitError, on_behalf_of
from openglm.untrusted.transfer import load_result

from . import jobs


@pytest.fixture
async def pool() -> AsyncIterator[UntrustedPool]:
    running = UntrustedPool(workers=2, memory_mb=512, timeout=10, preload=())
    yield running
    await running.close()


async def test_a_call_runs_in_another_process(pool: UntrustedPool) -> None:
    import os

    assert await pool.run(jobs.double, 21, what="a number") == 42
    assert await pool.run(jobs.pid, what="nothing") != os.getpid()


async def test_a_call_past_its_deadline_is_stopped_and_the_next_gets_a_fresh_worker(pool: UntrustedPool) -> None:
    first = await pool.run(jobs.pid, what="nothing")
    started = time.monotonic()
    with pytest.raises(WorkLimitError, match=r"took longer than 0\.5 s"):
        await pool.run(jobs.sleep, 30, what="the page", timeout=0.5)
    assert time.monotonic() - started < 5
    pids = {await pool.run(jobs.pid, what="nothing") for _ in range(3)}
    assert first not in pids or len(pids) == 1  # the killed worker is gone; the other may be reused


async def test_a_call_over_the_memory_limit_fails_alone(pool: UntrustedPool) -> None:
    with pytest.raises(WorkLimitError, match="memory"):
        await pool.run(jobs.allocate, 2048, what="the document")
    assert await pool.run(jobs.allocate, 16, what="the document") == 16 * 1024 * 1024


async def test_a_crash_fails_that_call_only(pool: UntrustedPool) -> None:
    with pytest.raises(WorkLimitError, match="could not be processed"):
        await pool.run(jobs.segfault, what="the grammar")
    assert await pool.run(jobs.double, 2, what="a number") == 4


async def test_errors_keep_their_meaning(pool: UntrustedPool) -> None:
    with pytest.raises(DocumentError) as document:
        await pool.run(jobs.refuse_document, what="the document")
    assert document.value.problem == "corrupt" and document.value.message == "the file is damaged"
    with pytest.raises(InvalidFieldError, match="that field is wrong") as field:
        await pool.run(jobs.refuse_field, what="x")
    assert field.value.code == "1214" and field.value.status == 400
    with pytest.raises(InternalError):
        await pool.run(jobs.broken, what="x")


async def test_a_reply_may_not_name_code(pool: UntrustedPool) -> None:
    with pytest.raises(InternalError, match="unreadable reply"):
        await pool.run(jobs.unsendable, what="x")
    with pytest.raises(pickle.UnpicklingError):
        load_result(pickle.dumps(print))


async def test_a_cancelled_call_kills_its_worker(pool: UntrustedPool) -> None:
    task = asyncio.create_task(pool.run(jobs.sleep, 30, what="x"))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.run(jobs.double, 1, what="x") == 2


async def test_calls_beyond_the_workers_wait_their_turn(pool: UntrustedPool) -> None:
    results = await asyncio.gather(*(pool.run(jobs.double, i, what="x") for i in range(6)))
    assert results == [i * 2 for i in range(6)]


async def test_a_worker_killed_while_idle_is_replaced(pool: UntrustedPool) -> None:
    import os
    import signal

    worker_pid = await pool.run(jobs.pid, what="x")
    os.kill(worker_pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert await pool.run(jobs.pid, what="x") != worker_pid


def _live_workers() -> set[int]:
    """This process's children that run a pool worker and have not exited (zombies excluded)."""
    import os
    from pathlib import Path

    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, ...
        if fields[0] != "Z" and int(fields[1]) == os.getpid() and b"openglm.untrusted.worker" in command:
            found.add(int(entry.name))
    return found


async def _settled(before: set[int], most: int) -> set[int]:
    """The workers started since ``before`` once killed ones are gone (waits up to 5 s for them to exit)."""
    deadline = time.monotonic() + 5
    while len(new := _live_workers() - before) > most and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return new


async def test_calls_cancelled_while_their_worker_starts_leave_no_process(pool: UntrustedPool) -> None:
    """A client that disconnects while a worker is being started for it: that worker was neither killed nor kept,
    so each such call left a process behind (here, before the fix: about two per round, 20+ after ten rounds)."""
    before = _live_workers()
    for round_ in range(10):
        calls = [asyncio.create_task(pool.run(jobs.double, i, what="x")) for i in range(4)]
        await asyncio.sleep(0.02 * round_)  # from "not started yet" to "importing", across the rounds
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    left = await _settled(before, pool.workers)
    assert len(left) <= pool.workers, f"{len(left)} worker processes for a pool of {pool.workers}"
    # The pool still has both of its slots: two calls run side by side, and more calls queue and finish.
    assert sorted(await asyncio.gather(*(pool.run(jobs.double, i, what="x") for i in range(6)))) == [
        i * 2 for i in range(6)
    ]
    assert len(await _settled(before, pool.workers)) <= pool.workers


async def test_calls_cancelled_while_waiting_or_running_leave_no_process(pool: UntrustedPool) -> None:
    before = _live_workers()
    for _ in range(3):
        calls = [asyncio.create_task(pool.run(jobs.sleep, 30, what="x")) for _ in range(5)]  # 3 of them queue
        await asyncio.sleep(1.5)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    assert len(await _settled(before, 0)) == 0  # the running calls' workers were killed
    assert await asyncio.gather(*(pool.run(jobs.double, i, what="x") for i in range(4))) == [0, 2, 4, 6]
    assert len(await _settled(before, pool.workers)) <= pool.workers


async def test_close_kills_workers_that_are_starting() -> None:
    before = _live_workers()
    pool = UntrustedPool(workers=2, memory_mb=512, timeout=10, preload=())
    calls = [asyncio.create_task(pool.run(jobs.double, i, what="x")) for i in range(2)]
    await asyncio.sleep(0.05)
    await pool.close()
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert len(await _settled(before, 0)) == 0


async def test_one_account_cannot_take_every_worker(pool: UntrustedPool) -> None:
    """Two workers, so each account may hold one: account a's four slow calls run one at a time in a's own queue,
    and account b's call takes the other worker at once (before: it queued behind a's calls, ~2 s)."""
    await asyncio.gather(*(pool.run(jobs.sleep, 0.1, what="x") for _ in range(2)))  # both workers started

    async def slow_for_a() -> float:
        with on_behalf_of("acct_a"):
            started = time.monotonic()
            await pool.run(jobs.sleep, 1.0, what="x")
            return time.monotonic() - started

    greedy = [asyncio.create_task(slow_for_a()) for _ in range(4)]
    await asyncio.sleep(0.2)
    with on_behalf_of("acct_b"):
        started = time.monotonic()
        assert await pool.run(jobs.double, 21, what="x") == 42
        assert time.monotonic() - started < 0.5
    assert max(await asyncio.gather(*greedy)) > 3.5  # a's calls ran one after another
    with on_behalf_of(None):  # work on no account's behalf is not limited to a share
        started = time.monotonic()
        await asyncio.gather(*(pool.run(jobs.sleep, 0.5, what="x") for _ in range(2)))
        assert time.monotonic() - started < 0.9
    assert pool._shares == {}  # a share is dropped once no call holds or waits for it
