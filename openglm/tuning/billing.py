"""Billing of fine-tuning: trained tokens (across epochs) × the base model's ``fine_tuning`` price per 1K, settled as
the job runs, through the one write of usage and ledger entries (``accounts/recording.py: write_usage``).

Each charge covers the tokens trained since the last one. What was billed so far is kept in the job's progress
(``billed_tokens``) and moved in the same transaction as the charge, with the job's row locked and only while the
charging worker holds the job (``JobStore.holding``). So a job re-claimed after its worker died, which runs again
the steps after its last checkpoint, pays for tokens beyond what was billed only — never twice — and a cancelled
job has paid for the steps it reported. The usage record's id is ``<job id>-t<tokens trained so far>``: the same
progress point cannot be written twice either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..accounts.money import cost_of
from ..accounts.recording import UsageEntry, write_usage
from ..jobs.store import JobStore, Lease
from ..store.types import utcnow

ENDPOINT = "fine_tuning.jobs"


@dataclass(frozen=True)
class Billing:
    account_id: str
    key_id: str | None
    model: str  # the base model's catalog id
    price_per_1k: int  # nano-yuan per 1K trained tokens, fixed when the job was created
    started_at: datetime


async def charge(store: JobStore, lease: Lease, billing: Billing, trained_tokens: int, progress: dict[str, Any]) -> int:
    """Charge the tokens trained beyond those already billed and save ``progress`` (with ``billed_tokens``) in one
    transaction; the tokens charged now (0 when nothing new was trained)."""
    async with store.holding(lease) as (session, job):
        billed = int((job.progress or {}).get("billed_tokens", 0))
        new = trained_tokens - billed
        progress = {**progress, "billed_tokens": max(billed, trained_tokens)}
        if new > 0:
            cost = cost_of(trained_tokens, billing.price_per_1k) - cost_of(billed, billing.price_per_1k)
            entry = UsageEntry(
                id=f"{lease.job_id}-t{trained_tokens}",
                request_id=lease.job_id,
                account_id=billing.account_id,
                key_id=billing.key_id,
                model=billing.model,
                endpoint=ENDPOINT,
                prompt_tokens=new,
                completion_tokens=0,
                images=0,
                cost=cost,
                status="succeeded",
                started_at=billing.started_at,
                created_at=utcnow(),
            )
            await write_usage(await session.connection(), entry)
        await store.set_progress(session, lease.job_id, progress)
    return max(new, 0)
