"""Per-account storage quota: every byte an account keeps in the blob store — uploads of every purpose, knowledge
documents' original files, code-interpreter outputs, pictures of the image endpoint and the drawing tool — all of
which are files made by ``FileStore.create`` —, its fine-tuned models' LoRA adapters (``tuning/finetuned.py``), and
the configurations of its GLMs' versions (``glms/store.py``).

The counter (``account_storage.used_bytes``) moves in the same transaction as the row it accounts for, and an
increase is one conditional UPDATE (``used + n <= quota``): concurrent uploads are ordered by the row's lock
(PostgreSQL) or the single writer (SQLite), so no two can both pass a check that only one fits, and a rolled-back
file row takes its bytes back with it. Knowledge chunks and embeddings (derived from those documents, in the
database) are bounded separately by ``OPENGLM_KNOWLEDGE_CAPACITY_CHARS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import StorageQuotaError
from ..store.db import Database
from ..store.models import AccountStorage

log = logging.getLogger(__name__)
MiB = 1024 * 1024
# A quota of -1 means no limit wherever a quota is given (OPENGLM_STORAGE_QUOTA_MB, the admin API's quota_mb, the
# CLI's --quota-mb; stored as -1 bytes), and 0 means nothing may be kept, everywhere. An account's quota of NULL
# (API: null, CLI: --default) is the server's default.
UNLIMITED = -1


def quota_bytes_of(mb: int) -> int:
    """A quota given in MB as bytes (-1, unlimited, stays -1)."""
    return UNLIMITED if mb == UNLIMITED else mb * MiB


@dataclass(frozen=True)
class StorageUsage:
    used_bytes: int
    quota_bytes: int | None  # None: unlimited
    account_quota: bool  # the operator set this account's quota (else the server's default applies)


class StorageQuota:
    def __init__(self, db: Database, default_bytes: int | None):
        self.db = db
        self.default_bytes = default_bytes  # None: unlimited
        self._default = UNLIMITED if default_bytes is None else default_bytes
        if default_bytes == 0:  # it meant unlimited before -1 did: say so where an operator looks
            log.warning("OPENGLM_STORAGE_QUOTA_MB=0: accounts may keep nothing unless given a quota (-1: unlimited)")

    async def charge(self, session: AsyncSession, account_id: str, size: int, what: str = "this file") -> None:
        """``size`` more bytes for the account, in the caller's transaction; StorageQuotaError (nothing moved)
        when they do not fit. The UPDATE holds the account's row until the transaction ends (PostgreSQL), so
        the caller's other writes for the account are ordered with everyone else's too."""
        await _ensure_row(session, account_id)
        quota = func.coalesce(AccountStorage.quota_bytes, literal(self._default))
        moved = await session.execute(
            update(AccountStorage)
            .where(AccountStorage.account_id == account_id, or_(quota < 0, AccountStorage.used_bytes + size <= quota))
            .values(used_bytes=AccountStorage.used_bytes + size)
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            return
        usage = await self._usage_in(session, account_id)
        raise StorageQuotaError(_refusal(usage, size, what))

    async def release(self, session: AsyncSession, account_id: str, size: int) -> None:
        """``size`` bytes given back, in the transaction that removes their file row."""
        await session.execute(
            update(AccountStorage)
            .where(AccountStorage.account_id == account_id)
            .values(used_bytes=AccountStorage.used_bytes - size)
        )

    async def usage(self, account_id: str) -> StorageUsage:
        async with self.db.read() as session:
            return await self._usage_in(session, account_id)

    async def check(self, account_id: str, size: int, what: str = "this file") -> None:
        """StorageQuotaError if ``size`` more bytes do not fit now: a cheap refusal before work that is costly to
        undo (writing the blob, training an adapter), not a reservation; ``charge`` decides."""
        usage = await self.usage(account_id)
        if usage.quota_bytes is not None and usage.used_bytes + size > usage.quota_bytes:
            raise StorageQuotaError(_refusal(usage, size, what))

    async def set_quota(self, account_id: str, quota_bytes: int | None) -> StorageUsage:
        """The operator's quota for one account (None: back to the server's default; UNLIMITED: none). Files
        already kept stay even above a lowered quota; new ones are refused until the account is under it."""
        if quota_bytes is not None and quota_bytes < UNLIMITED:
            raise ValueError(f"a storage quota is -1 (unlimited) or 0 bytes or more, not {quota_bytes}")
        async with self.db.session() as session:
            await _ensure_row(session, account_id)
            await session.execute(
                update(AccountStorage).where(AccountStorage.account_id == account_id).values(quota_bytes=quota_bytes)
            )
            return await self._usage_in(session, account_id)

    async def _usage_in(self, session: AsyncSession, account_id: str) -> StorageUsage:
        row = (
            await session.execute(
                select(AccountStorage.used_bytes, AccountStorage.quota_bytes).where(
                    AccountStorage.account_id == account_id
                )
            )
        ).one_or_none()
        used, own = (0, None) if row is None else (int(row[0]), row[1])
        quota = int(own) if own is not None else self._default
        return StorageUsage(used, None if quota == UNLIMITED else quota, own is not None)


async def _ensure_row(session: AsyncSession, account_id: str) -> None:
    # Standard on PostgreSQL and on SQLite (3.24+): one row per account, made by whichever file comes first.
    await session.execute(
        text(
            "INSERT INTO account_storage (account_id, used_bytes) VALUES (:account, 0) "
            "ON CONFLICT (account_id) DO NOTHING"
        ),
        {"account": account_id},
    )


def _refusal(usage: StorageUsage, size: int, what: str = "this file") -> str:
    quota = usage.quota_bytes or 0
    return (
        f"存储空间不足 / storage quota exceeded: the account keeps {human(usage.used_bytes)} of its {human(quota)} "
        f"and {what} needs {human(size)}; delete files (GET /files, DELETE /files/{{id}}), fine-tuned models or "
        "GLMs, or ask the operator for more"
    )


def human(size: int) -> str:
    return f"{size / MiB:.1f} MB" if size >= MiB else f"{size / 1024:.1f} KB"
