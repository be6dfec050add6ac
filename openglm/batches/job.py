"""The ``batch`` job kind: a batch's lines run by a server (its handler needs the loaded models and the run
service, so ``openglm jobs work`` processes do not register it). A replica that dies mid-batch gives the job up
after its lease; the next claim goes on from the lines already answered. A failure the handler did not expect is
retried (``ATTEMPTS``); the answered lines are not run again."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..jobs.context import JobContext
from ..jobs.kinds import job_kinds, lost_hooks, own_slots
from ..jobs.store import JobRecord, JobStore
from ..store.db import Database
from .service import BatchService
from .store import JOB_KIND

# The batch service of each database in this process (a server's).
_services: dict[int, BatchService] = {}


def attach(db: Database, service: BatchService) -> None:
    _services[id(db)] = service


def detach(db: Database) -> None:
    _services.pop(id(db), None)


@job_kinds.register(JOB_KIND)
async def run_batch(ctx: JobContext) -> dict[str, Any] | None:
    service = _services.get(id(ctx.store.db))
    if service is None:  # retried later, when a server (which has one) may claim it
        raise RuntimeError("batches run in a server process; this one has no batch service")
    await service.run(str(ctx.payload["batch_id"]))
    return None


@lost_hooks.register(JOB_KIND)
async def batch_lost(store: JobStore, job: JobRecord) -> None:
    """Every attempt's worker died: the batch ends failed with the answers it has, not left in progress."""
    service = _services.get(id(store.db))
    message = f"the batch stopped {job.attempts} times ({job.error_message})"
    if service is not None:
        await service.fail(str(job.payload["batch_id"]), message)


@own_slots.register(JOB_KIND)
def batch_slots(settings: Settings) -> int:
    """OPENGLM_BATCH_WORKERS: batches a server runs at once, besides its shared slots."""
    return settings.batch_workers
