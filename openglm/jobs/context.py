"""What a job handler is given: its payload, where an earlier attempt left off, and the calls that report
progress, save checkpoints, append events and notice cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import JobStore, Json, Lease, Stop

if TYPE_CHECKING:
    from ..config import Settings


class JobCancelled(Exception):
    """Cancellation of the job was requested; raised into the handler by the context's calls. The job ends
    ``cancelled`` (a handler may catch it to clean up, then re-raise)."""


class JobPaused(JobCancelled):
    """A pause of the job was requested; raised into the handler by the context's calls, after what they write is
    written (so a handler that checkpoints each step stops right after its checkpoint). The attempt ends ``paused``
    with its checkpoint kept, and a resume runs the handler again from it. A ``JobCancelled``, so a handler's
    clean-up on cancellation runs for it too."""


class JobFailed(Exception):
    """A handler raises this for a failure that retrying cannot fix (a bad input): the job ends ``failed`` with
    this code and message at once. Any other exception is retried while attempts remain."""

    def __init__(self, message: str, *, code: str = "job_failed"):
        super().__init__(message)
        self.code = code
        self.message = message


class JobContext:
    """One attempt at one job. Every call that writes also learns whether cancellation was requested and, if so,
    raises ``JobCancelled``; the runner's heartbeats notice it too and cancel the handler's task, so a handler
    stuck in an ``await`` stops as well. A pause is learnt the same way and raises ``JobPaused``; the runner gives a
    pausing handler ``pause_grace_seconds`` to reach its next call before it cancels its task. Writes after the
    lease was lost raise ``LeaseLost``."""

    def __init__(self, store: JobStore, lease: Lease, *, lease_seconds: float, settings: Settings | None = None):
        self.store = store
        self.settings = settings  # the runner's process's settings (None: a runner made without them)
        self.lease = lease
        self.lease_seconds = lease_seconds
        self._cancelled = lease.job.cancel_requested_at is not None
        self._paused = lease.job.pause_requested_at is not None

    @property
    def job_id(self) -> str:
        return self.lease.job_id

    @property
    def kind(self) -> str:
        return self.lease.job.kind

    @property
    def account_id(self) -> str | None:
        return self.lease.job.account_id

    @property
    def payload(self) -> Json:
        return self.lease.job.payload

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 after one worker died or failed, ..."""
        return self.lease.attempt

    @property
    def resume(self) -> Json | None:
        """The checkpoint the last attempt saved (None on a fresh start): where to pick up."""
        return self.lease.checkpoint

    @property
    def saved_progress(self) -> Json | None:
        return self.lease.job.progress

    def is_cancelled(self) -> bool:
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def mark_cancelled(self) -> None:
        self._cancelled = True

    def is_paused(self) -> bool:
        """A pause was requested (and no cancel, which wins): the handler should stop at its next step, having
        saved a checkpoint to go on from."""
        return self._paused and not self._cancelled

    def mark_paused(self, paused: bool = True) -> None:
        self._paused = paused

    def raise_if_stopping(self) -> None:
        """``JobCancelled`` or ``JobPaused`` when either was requested."""
        self.raise_if_cancelled()
        if self._paused:
            raise JobPaused(f"job {self.job_id} was paused")

    async def progress(self, **values: Any) -> None:
        """Replace the progress clients see (e.g. ``step=3, total=10``)."""
        self._saw(await self.store.report(self.lease, progress=values))

    async def checkpoint(
        self,
        state: Json,
        *,
        progress: Json | None = None,
        message: str | None = None,
        metrics: Json | None = None,
    ) -> None:
        """Save what a later attempt resumes from (after this worker died, or the job was paused), with progress
        in the same write; ``message`` (and ``metrics``): an event saying so, written before a stop is raised."""
        stop = await self.store.report(self.lease, checkpoint=state, progress=progress)
        if message is not None and stop != "cancel":
            stop = await self.store.event(self.lease, message, metrics=metrics)
        self._saw(stop)

    async def event(self, message: str, *, level: str = "info", metrics: Json | None = None) -> None:
        self._saw(await self.store.event(self.lease, message, level=level, metrics=metrics))

    async def heartbeat(self) -> None:
        """Renew the lease now (the runner also does every few seconds) and check for cancellation."""
        self._saw(await self.store.heartbeat(self.lease, self.lease_seconds))

    def _saw(self, stop: Stop) -> None:
        if stop == "cancel":
            self._cancelled = True
        else:  # the row says whether a pause stands (a resume may have withdrawn it)
            self._paused = stop == "pause"
        self.raise_if_stopping()
