"""``JobRunner``: slots that claim jobs and run their handlers, with heartbeats, in the server's lifespan or in a
worker process of its own (``jobs/worker.py``).

Each slot claims one job at a time (``JobStore.claim``); an idle slot waits for ``wake()`` (a job submitted in this
process) or ``poll_seconds`` (one queued elsewhere). The ``slots`` claim every kind without slots of its own; a
kind with ``own_slots`` (``kinds.py``) has that many more slots claiming it alone, so ingestion is not stuck behind
fine-tuning jobs that hold the shared slots for hours. While a handler runs, a heartbeat task renews the lease every
``heartbeat_seconds``; when it learns that cancellation was requested it cancels the handler's task, and when the
lease was lost (this worker stalled past it and another one claimed the job) it cancels the handler and writes
nothing. When it learns that a pause was requested it marks the handler's context (whose calls then raise
``JobPaused``) and cancels the task only if the handler has not stopped within ``pause_grace_seconds``: a handler
that reports steps stops at the next one, after saving its checkpoint. The outcome is written conditionally on the
lease (``JobStore.finish``): succeeded with the handler's result, cancelled, paused (``JobStore.suspend``), failed
at once for ``JobFailed`` and platform errors, or retried with backoff for any other exception while attempts
remain. On close, running jobs are given back (``release``) for another worker to take
at once rather than after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import OpenGLMError
from .context import JobCancelled, JobContext, JobFailed, JobPaused
from .kinds import JobHandler, job_kinds, lost_hooks, own_slots
from .store import INTERNAL, JobRecord, JobStore, Json, Lease, LeaseLost

log = logging.getLogger(__name__)
RETRY_BASE_SECONDS = 5.0  # a failed attempt waits this long, doubling per attempt, before the next
RETRY_MAX_SECONDS = 300.0
PAUSE_GRACE_SECONDS = 60.0  # how long a pausing handler may take to reach its next step before it is cancelled


def worker_name() -> str:
    """Who holds a lease: host, process and a random part (so a restarted process never reuses a token)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Attempt:
    context: JobContext
    task: asyncio.Task[Json | None]
    lost: bool = False
    beat: asyncio.Task[None] | None = field(default=None)
    pause_deadline: float | None = None  # loop time after which a pausing handler's task is cancelled


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        *,
        kinds: Sequence[str] | None = None,
        slots: int = 2,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 2.0,
        poll_seconds: float = 2.0,
        owner: str | None = None,
        settings: Settings | None = None,
        kind_slots: Mapping[str, int] | None = None,
        pause_grace_seconds: float = PAUSE_GRACE_SECONDS,
    ):
        if heartbeat_seconds * 2 > lease_seconds:
            raise ValueError("heartbeats must come at least twice per lease")
        for kind in kinds or ():
            job_kinds.get(kind)  # an unknown kind: KeyError listing the known ones
        self.store = store
        self.kinds = list(kinds) if kinds is not None else None  # None: every registered kind
        self.slots = slots
        self.kind_slots = dict(kind_slots or {})  # kind → slots that claim that kind alone
        for kind in self.kind_slots:
            job_kinds.get(kind)
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.pause_grace_seconds = pause_grace_seconds
        self.owner = owner or worker_name()
        self.settings = settings  # handed to handlers (``JobContext.settings``): the process's configuration
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, _Attempt] = {}
        self._closing = False

    @classmethod
    def from_settings(
        cls, settings: Settings, store: JobStore, *, kinds: Sequence[str] | None = None, slots: int | None = None
    ) -> JobRunner:
        """Slots from the settings: ``slots`` (or OPENGLM_JOB_WORKERS) shared, and each registered kind's own
        (``own_slots``, e.g. OPENGLM_INGEST_WORKERS) among ``kinds``."""
        chosen = kinds if kinds is not None else job_kinds.names()
        return cls(
            store,
            kinds=kinds,
            slots=settings.job_workers if slots is None else slots,
            lease_seconds=settings.job_lease_seconds,
            heartbeat_seconds=settings.job_heartbeat_seconds,
            poll_seconds=settings.job_poll_seconds,
            settings=settings,
            kind_slots={kind: own_slots.get(kind)(settings) for kind in own_slots.names() if kind in chosen},
        )

    def kind_names(self) -> list[str]:
        return self.kinds if self.kinds is not None else job_kinds.names()

    def shared_kinds(self) -> list[str]:
        """The kinds the shared slots claim: every kind of this runner without slots of its own."""
        return [kind for kind in self.kind_names() if kind not in self.kind_slots]

    @property
    def running(self) -> list[str]:
        """Ids of the jobs this runner is running now."""
        return list(self._running)

    async def start(self) -> None:
        self._closing = False
        shared = self.slots if self.kinds is None or self.shared_kinds() else 0  # none: every kind has its own
        self._tasks = [asyncio.create_task(self._slot(None), name=f"jobs-{i}") for i in range(shared)]
        for kind, count in self.kind_slots.items():
            self._tasks += [asyncio.create_task(self._slot([kind]), name=f"jobs-{kind}-{i}") for i in range(count)]

    def wake(self) -> None:
        self._wake.set()

    async def submit(
        self,
        kind: str,
        payload: Json | None = None,
        *,
        account_id: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        prefix: str = "job",
    ) -> JobRecord:
        """Queue a job of a registered kind (``JobStore.submit``) and wake this runner's idle slots."""
        job_kinds.get(kind)
        record = await self.store.submit(
            kind, payload, account_id=account_id, priority=priority, max_attempts=max_attempts, prefix=prefix
        )
        self.wake()
        return record

    async def cancel(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Request cancellation (``JobStore.cancel``); a job running here stops at once, not at its next heartbeat."""
        record = await self.store.cancel(job_id, account_id=account_id)
        attempt = self._running.get(job_id)
        if attempt is not None and record.cancel_requested_at is not None:
            attempt.context.mark_cancelled()
            attempt.task.cancel()
        return record

    async def pause(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Request a pause (``JobStore.pause``); a job running here learns it at once, not at its next heartbeat."""
        record = await self.store.pause(job_id, account_id=account_id)
        attempt = self._running.get(job_id)
        if attempt is not None and record.pause_requested_at is not None:
            self._pausing(attempt)
        return record

    async def resume(self, job_id: str, *, account_id: str | None = None) -> JobRecord:
        """Queue a paused job again (``JobStore.resume``) and wake this runner's idle slots."""
        record = await self.store.resume(job_id, account_id=account_id)
        attempt = self._running.get(job_id)
        if attempt is not None:  # the pause was withdrawn before it took effect
            attempt.context.mark_paused(False)
            attempt.pause_deadline = None
        self.wake()
        return record

    def _pausing(self, attempt: _Attempt) -> None:
        attempt.context.mark_paused()
        if attempt.pause_deadline is None:
            attempt.pause_deadline = asyncio.get_running_loop().time() + self.pause_grace_seconds

    async def close(self) -> None:
        """Stop the slots; each gives its running job back (released, queued for the next worker)."""
        self._closing = True  # besides the cancel: Python 3.11's wait_for can swallow one that races a wake-up
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _slot(self, kinds: list[str] | None) -> None:
        while not self._closing:
            lost: list[JobRecord] = []
            try:
                names = kinds if kinds is not None else self.shared_kinds()
                lease = await self.store.claim(names, self.owner, self.lease_seconds, lost=lost)
            except Exception:
                log.exception("jobs: cannot claim from the queue")
                lease = None
            for record in lost:
                await self._lost(record)
            if lease is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                continue
            self._wake.set()  # there may be more: let the other idle slots look too
            await self._run(lease)

    async def _lost(self, record: JobRecord) -> None:
        """A job the claim ended ``worker_lost``: its kind's hook, if it has one, cleans up after it."""
        if record.kind not in lost_hooks:
            return
        try:
            await lost_hooks.get(record.kind)(self.store, record)
        except Exception:
            log.exception("jobs: the lost-job hook of %s failed for %s", record.kind, record.id)

    async def _run(self, lease: Lease) -> None:
        context = JobContext(self.store, lease, lease_seconds=self.lease_seconds, settings=self.settings)
        handler = job_kinds.get(lease.job.kind)
        attempt = _Attempt(context, asyncio.create_task(_call(handler, context), name=f"job-{lease.job_id}"))
        attempt.beat = asyncio.create_task(self._beat(attempt), name=f"job-beat-{lease.job_id}")
        self._running[lease.job_id] = attempt
        log.info("jobs: %s %s attempt %d on %s", lease.job.kind, lease.job_id, lease.attempt, self.owner)
        try:
            await self._outcome(attempt)
        finally:
            attempt.beat.cancel()
            self._running.pop(lease.job_id, None)

    async def _outcome(self, attempt: _Attempt) -> None:
        context, lease = attempt.context, attempt.context.lease
        try:
            result = await attempt.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # this runner is closing: give the job back
                if attempt.beat is not None:
                    attempt.beat.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release(lease))
                raise
            if attempt.lost:
                log.warning("jobs: %s lost its lease; its new holder goes on with it", lease.job_id)
            elif context.is_cancelled():
                await self._end(lease, "cancelled")
            elif context.is_paused():
                await self._suspend(lease)
            else:
                await self._failed(lease, RuntimeError("the handler was cancelled"))
        except JobPaused:
            if context.is_cancelled():  # a cancel came after the pause: it wins
                await self._end(lease, "cancelled")
            else:
                await self._suspend(lease)
        except JobCancelled:
            await self._end(lease, "cancelled")
        except LeaseLost:
            log.warning("jobs: %s lost its lease; its new holder goes on with it", lease.job_id)
        except JobFailed as exc:
            await self._end(lease, "failed", code=exc.code, message=exc.message)
        except OpenGLMError as exc:
            await self._end(lease, "failed", code=exc.code, message=exc.message)
        except Exception as exc:
            await self._failed(lease, exc)
        else:
            await self._end(lease, "succeeded", result=result)

    async def _end(
        self,
        lease: Lease,
        status: str,
        *,
        result: Json | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        try:
            ended = await asyncio.shield(self.store.finish(lease, status, result=result, code=code, message=message))
        except (TypeError, ValueError) as exc:  # a result that is not JSON
            log.exception("jobs: %s returned a result that cannot be stored", lease.job_id)
            ended = await asyncio.shield(
                self.store.finish(lease, "failed", code=INTERNAL, message=f"result not storable: {exc}")
            )
        if not ended:
            log.warning("jobs: %s was no longer held by %s; its outcome was not written", lease.job_id, self.owner)

    async def _suspend(self, lease: Lease) -> None:
        if not await asyncio.shield(self.store.suspend(lease)):
            log.warning("jobs: %s was no longer held by %s; it was not paused", lease.job_id, self.owner)

    async def _failed(self, lease: Lease, exc: BaseException) -> None:
        log.error("jobs: %s attempt %d failed", lease.job_id, lease.attempt, exc_info=exc)
        delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (lease.attempt - 1))
        message = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            await asyncio.shield(self.store.retry(lease, code=INTERNAL, message=message, delay_seconds=delay))
        except LeaseLost:
            log.warning("jobs: %s was no longer held by %s", lease.job_id, self.owner)

    async def _beat(self, attempt: _Attempt) -> None:
        lease = attempt.context.lease
        loop = asyncio.get_running_loop()
        while not attempt.task.done():
            await asyncio.sleep(self._beat_wait(attempt, loop.time()))
            if attempt.pause_deadline is not None and loop.time() >= attempt.pause_deadline:
                attempt.task.cancel()  # the handler did not stop at a step of its own: stop it here
                return
            try:
                stop = await self.store.heartbeat(lease, self.lease_seconds)
            except LeaseLost:
                attempt.lost = True
                attempt.task.cancel()
                return
            except Exception:  # the database is away for a moment: the lease has room for a missed beat
                log.warning("jobs: heartbeat of %s failed", lease.job_id, exc_info=True)
                continue
            if stop == "cancel":
                attempt.context.mark_cancelled()
                attempt.task.cancel()
                return
            if stop == "pause":
                self._pausing(attempt)
            else:  # none, or a pause withdrawn by a resume
                attempt.context.mark_paused(False)
                attempt.pause_deadline = None

    def _beat_wait(self, attempt: _Attempt, now: float) -> float:
        if attempt.pause_deadline is None:
            return self.heartbeat_seconds
        return max(0.0, min(self.heartbeat_seconds, attempt.pause_deadline - now))


async def _call(handler: JobHandler, context: JobContext) -> Json | None:
    result = await handler(context)
    if result is not None and not isinstance(result, dict):
        raise TypeError(f"a job handler returns a JSON object or None, not {type(result).__name__}")
    return result
