"""Fine-tuned models: the rows jobs make (``fine_tuned_models``), private to their account.

A fine-tuned model is a LoRA adapter (a blob) served on its catalog base model. ``resolve`` is what model
resolution for chat uses: the base's catalog name and the adapter's local path, or ``ModelNotFoundError`` (1211)
for a name the account does not own — the same answer as for a model that does not exist, so another account's
models are not even confirmed to exist. A model that was merged (``merge_job.py``) also has a full GGUF with the
adapter merged in (``merged_blob``), which serving loads as an engine of its own.

The adapter counts in its account's storage quota (``files/quota.py``), like the account's files: its bytes are
charged in the transaction that makes the model's row (``StorageQuotaError`` and no row when they do not fit) and
given back in the one that deletes it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ModelNotFoundError
from ..files.quota import StorageQuota
from ..store.db import Database
from ..store.models import FineTunedModel
from ..store.types import utcnow

PREFIX = "ft:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def is_fine_tuned_name(name: str) -> bool:
    return name.startswith(PREFIX)


def new_model_id(base: str, label: str) -> str:
    """``ft:<base>:<suffix, or the owner's short id>:<random>``, in OpenAI's style; every part ``[A-Za-z0-9_.-]``."""
    parts = [_UNSAFE.sub("-", base)[:100], _UNSAFE.sub("-", label)[:40] or "model", secrets.token_hex(4)]
    return PREFIX + ":".join(parts)


def adapter_key(job_id: str) -> str:
    """The adapter's blob key (one per job)."""
    return f"adapter-{job_id}.gguf"


def merged_key(merge_job_id: str) -> str:
    """A merged model's blob key (one per merge job: a new merge never overwrites the file being served)."""
    return f"merged-{merge_job_id}.gguf"


@dataclass(frozen=True)
class FineTunedRecord:
    id: str
    account_id: str
    base_model: str
    job_id: str
    adapter_blob: str
    owned_by: str
    created_at: datetime
    merge_job_id: str | None = None
    merged_blob: str | None = None
    merged_type: str | None = None
    bytes: int = 0  # the adapter's size, in the account's storage quota


@dataclass(frozen=True)
class AdapterTarget:
    """What serving a fine-tuned model needs: the base to run and the adapter to apply — or, once the model was
    merged, the full GGUF to run instead."""

    model: str  # the fine-tuned model's id (the adapter's stable key)
    base_model: str  # the catalog name of the base
    adapter_path: Path  # a llama.cpp LoRA adapter GGUF
    merged_path: Path | None = None  # the base with the adapter merged in (a GGUF), if the model was merged


class FineTunedModels:
    def __init__(self, db: Database, blob_root: Path, quota: StorageQuota):
        self.db = db
        self.blob_root = blob_root  # where ``LocalBlobStore`` keeps the adapters (served from their local path)
        self.quota = quota  # the accounts' storage quota, which adapters count in

    async def create(
        self, *, account_id: str, base_model: str, job_id: str, label: str, owned_by: str, size: int = 0
    ) -> FineTunedRecord:
        """The job's model, its adapter's ``size`` bytes charged to the account's storage (``StorageQuotaError``
        and nothing made when they do not fit); the same model again when the job was re-run (one model per job,
        charged once)."""
        existing = await self.of_job(job_id)
        if existing is not None:
            return existing
        row = FineTunedModel(
            id=new_model_id(base_model, label),
            account_id=account_id,
            base_model=base_model,
            job_id=job_id,
            adapter_blob=adapter_key(job_id),
            bytes=size,
            owned_by=owned_by,
            created_at=utcnow(),
            deleted=False,
        )
        try:
            async with self.db.session() as session:
                await self.quota.charge(session, account_id, size, "the fine-tuned model's adapter")
                session.add(row)
        except IntegrityError:  # another attempt of the job made it meanwhile
            existing = await self.of_job(job_id)
            if existing is None:
                raise
            return existing
        return _record(row)

    async def of_job(self, job_id: str) -> FineTunedRecord | None:
        async with self.db.read() as session:
            row = (await session.scalars(select(FineTunedModel).where(FineTunedModel.job_id == job_id))).first()
        return None if row is None else _record(row)

    async def list(self, account_id: str) -> list[FineTunedRecord]:
        """The account's models, oldest first."""
        query = (
            select(FineTunedModel)
            .where(FineTunedModel.account_id == account_id, FineTunedModel.deleted.is_(False))
            .order_by(FineTunedModel.created_at, FineTunedModel.id)
        )
        async with self.db.read() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def get(self, account_id: str, name: str) -> FineTunedRecord:
        async with self.db.read() as session:
            row = await session.get(FineTunedModel, name)
        if row is None or row.deleted or row.account_id != account_id:
            raise ModelNotFoundError(f"模型不存在 / model {name!r} does not exist")
        return _record(row)

    async def resolve(self, account_id: str, name: str) -> AdapterTarget:
        record = await self.get(account_id, name)
        merged = None if record.merged_blob is None else self.blob_root / record.merged_blob
        return AdapterTarget(record.id, record.base_model, self.blob_root / record.adapter_blob, merged)

    async def merging(self, account_id: str, name: str, job_id: str) -> None:
        """Record ``job_id`` as the model's latest merge job (the one whose file serving will switch to)."""
        await self._update(account_id, name, merge_job_id=job_id)

    async def merged(self, account_id: str, name: str, job_id: str, blob: str, merged_type: str) -> str | None:
        """Serve the model from ``blob`` from now on, if ``job_id`` is still its latest merge job and the model was
        not deleted meanwhile; returns the blob it replaces (for the caller to remove). ``MergeSuperseded`` when the
        merge no longer applies: the caller removes ``blob``."""
        async with self.db.session() as session:
            row = await session.get(FineTunedModel, name, with_for_update=True)
            if row is None or row.deleted or row.account_id != account_id or row.merge_job_id != job_id:
                raise MergeSuperseded(f"model {name} was deleted or unmerged while merge job {job_id} ran")
            previous, row.merged_blob, row.merged_type = row.merged_blob, blob, merged_type
        return previous

    async def unmerge(self, account_id: str, name: str) -> FineTunedRecord:
        """Serve the model as its adapter on the base again; the record as it was (its ``merged_blob`` is for the
        caller to remove). A merge job still running finds its result unwanted (``MergeSuperseded``)."""
        async with self.db.session() as session:
            row = await session.get(FineTunedModel, name, with_for_update=True)
            if row is None or row.deleted or row.account_id != account_id:
                raise ModelNotFoundError(f"模型不存在 / model {name!r} does not exist")
            record = _record(row)
            row.merge_job_id = row.merged_blob = row.merged_type = None
        return record

    async def _update(self, account_id: str, name: str, **values: object) -> None:
        async with self.db.session() as session:
            result = await session.execute(
                update(FineTunedModel)
                .where(
                    FineTunedModel.id == name,
                    FineTunedModel.account_id == account_id,
                    FineTunedModel.deleted.is_(False),
                )
                .values(**values)
            )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise ModelNotFoundError(f"模型不存在 / model {name!r} does not exist")

    async def delete(self, account_id: str, name: str) -> FineTunedRecord:
        """Hide the model (its row stays, so its id is never reused) and give its adapter's bytes back to the
        account's storage, in one transaction (once, also when two deletes race); the caller removes the blob."""
        record = await self.get(account_id, name)
        async with self.db.session() as session:
            hidden = await session.execute(
                update(FineTunedModel)
                .where(
                    FineTunedModel.id == name,
                    FineTunedModel.account_id == account_id,
                    FineTunedModel.deleted.is_(False),
                )
                .values(deleted=True, deleted_at=utcnow())
            )
            if hidden.rowcount == 1:  # type: ignore[attr-defined]
                await self.quota.release(session, account_id, record.bytes)
        return record


class MergeSuperseded(Exception):
    """A merge finished for a model that was deleted, unmerged or merged again meanwhile."""


def _record(row: FineTunedModel) -> FineTunedRecord:
    return FineTunedRecord(
        row.id,
        row.account_id,
        row.base_model,
        row.job_id,
        row.adapter_blob,
        row.owned_by,
        row.created_at,
        row.merge_job_id,
        row.merged_blob,
        row.merged_type,
        row.bytes,
    )
