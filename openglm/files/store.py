"""File records and their blobs: per-account, limited per purpose and by the account's storage quota, never
half-stored."""

from __future__ import annotations

import io
import secrets
import string
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath

from sqlalchemy import delete, select

from ..errors import InvalidFieldError, NotFoundError
from ..store.db import Database
from ..store.models import File
from ..untrusted.loaders import load_json
from ..untrusted.pool import shared_pool
from .blobs import BlobStore
from .names import clean_filename, clean_media_type
from .quota import StorageQuota

MiB = 1024 * 1024


@dataclass(frozen=True)
class PurposeRules:
    max_bytes: int
    suffixes: frozenset[str] | None = None  # None: any type
    jsonl: bool = False  # every line must be a JSON object
    uploads: bool = True  # False: only the platform makes files of this purpose (a job's results)


def _document_suffixes() -> frozenset[str]:
    """What the knowledge parsers read (the formats' own registry): a retrieval file is one a base can take."""
    from ..knowledge.parsing import supported_suffixes

    return frozenset(supported_suffixes())


DOCUMENTS = _document_suffixes()
PURPOSES = {
    "fine-tune": PurposeRules(100 * MiB, frozenset({".jsonl"}), jsonl=True),
    "batch": PurposeRules(100 * MiB, frozenset({".jsonl"}), jsonl=True),
    "retrieval": PurposeRules(50 * MiB, DOCUMENTS),
    "assistant": PurposeRules(50 * MiB),
    "code-interpreter": PurposeRules(50 * MiB),  # attachments for, and files written by, the code interpreter
    "image-generation": PurposeRules(50 * MiB, frozenset({".png"})),  # pictures the image models made
    # A fine-tuning job's metrics CSV, loss curve and LoRA adapter (GGUF; a 9B base's r=8 adapter is about 50 MB);
    # OpenAI's name for the purpose.
    "fine-tune-results": PurposeRules(1024 * MiB, frozenset({".csv", ".png", ".gguf"}), uploads=False),
    "batch_output": PurposeRules(1024 * MiB, frozenset({".jsonl"}), uploads=False),  # a batch's output and errors
    # The file parsing service's documents (kept until parsed) and their text (``files/parser.py``).
    "file-parser": PurposeRules(50 * MiB, DOCUMENTS, uploads=False),
}
# The purposes the openai SDK's ``FileObject`` declares, of those above: what ``GET /v1/files`` lists unless asked
# for a purpose. The files the server makes for itself or for Zhipu's APIs (knowledge documents, assistant
# attachments, code-interpreter outputs, drawn pictures) carry purposes that SDK does not know; they are listed
# under /api/paas/v4, or under /v1 when their purpose is asked for by name.
OPENAI_PURPOSES = frozenset({"fine-tune", "fine-tune-results", "batch", "batch_output"})


@dataclass(frozen=True)
class FileRecord:
    id: str
    account_id: str
    purpose: str
    filename: str
    bytes: int
    content_type: str
    created_at: datetime


def new_file_id(now: datetime) -> str:
    """Zhipu's shape: ``file-20240428021923715-xjng4``."""
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return f"file-{now.strftime('%Y%m%d%H%M%S')}{now.microsecond // 1000:03d}-{suffix}"


def check_upload(purpose: str, filename: str, data: bytes, *, by_platform: bool = False) -> None:
    """The cheap checks (purpose, size, suffix); a JSONL file's lines are checked by ``check_jsonl``.
    ``by_platform``: a file the platform makes (a job's results), which may have a purpose uploads may not."""
    rules = PURPOSES.get(purpose)
    if rules is None or not (rules.uploads or by_platform):
        uploadable = [name for name, rule in PURPOSES.items() if rule.uploads]
        raise InvalidFieldError(f"purpose must be one of {', '.join(uploadable)}, not {purpose!r}")
    if not data:
        raise InvalidFieldError("the file is empty")
    if len(data) > rules.max_bytes:
        raise InvalidFieldError(f"the file is {len(data)} bytes; {purpose} files may have {rules.max_bytes}")
    suffix = PurePath(filename).suffix.lower()
    if rules.suffixes is not None and suffix not in rules.suffixes:
        raise InvalidFieldError(f"{purpose} takes {', '.join(sorted(rules.suffixes))} files, not {filename!r}")


def check_jsonl(data: bytes) -> None:
    """Every non-blank line is a JSON object nested at most ``MAX_DEPTH`` deep (a line nested 100,000 deep was a
    RecursionError, a 500). Up to 100 MiB of JSON: run it off the event loop (``FileStore.create`` uses a worker)."""
    for number, raw in enumerate(io.BytesIO(data), start=1):  # lazily, line by line: no copy of the whole file
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidFieldError(f"line {number} is not UTF-8 text") from None
        if not line.strip():
            continue
        try:
            value = load_json(line, what=f"line {number}")
        except ValueError:
            raise InvalidFieldError(f"line {number} is not a JSON object") from None
        if not isinstance(value, dict):
            raise InvalidFieldError(f"line {number} is not a JSON object")


class FileStore:
    def __init__(self, db: Database, blobs: BlobStore, *, quota_bytes: int | None = None):
        """``quota_bytes``: what an account may keep unless the operator set its own quota; None: unlimited."""
        self.db = db
        self.blobs = blobs
        self.quota = StorageQuota(db, quota_bytes)

    async def create(
        self,
        account_id: str,
        purpose: str,
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        by_platform: bool = False,
    ) -> FileRecord:
        filename, content_type = clean_filename(filename), clean_media_type(content_type)  # for every later use
        check_upload(purpose, filename, data, by_platform=by_platform)
        await self.quota.check(account_id, len(data))  # before the contents are examined and the blob written
        if PURPOSES[purpose].jsonl:
            await shared_pool().run(check_jsonl, data, what="the JSONL file")
        now = datetime.now(UTC)
        record = FileRecord(new_file_id(now), account_id, purpose, filename, len(data), content_type, now)
        await self.blobs.put(record.id, data)
        try:
            async with self.db.session() as session:
                await self.quota.charge(session, account_id, record.bytes)  # decides: with the row, or not at all
                session.add(
                    File(
                        id=record.id,
                        account_id=account_id,
                        purpose=purpose,
                        filename=record.filename,
                        bytes=record.bytes,
                        content_type=record.content_type,
                        created_at=now,
                    )
                )
        except BaseException:
            await self.blobs.delete(record.id)  # no blob without its row
            raise
        return record

    async def get(self, account_id: str, file_id: str) -> FileRecord:
        async with self.db.read() as session:
            row = await session.get(File, file_id)
        if row is None or row.account_id != account_id:
            raise NotFoundError(f"file {file_id!r} does not exist")
        return _record(row)

    async def content(self, account_id: str, file_id: str) -> tuple[FileRecord, bytes]:
        record = await self.get(account_id, file_id)
        return record, await self.blobs.get(record.id)

    async def list(
        self,
        account_id: str,
        *,
        purpose: str | None = None,
        limit: int = 20,
        after: str | None = None,
        purposes: Collection[str] | None = None,
    ) -> tuple[list[FileRecord], bool]:
        """Newest first; ``after`` pages on from a file id. ``purpose``: that one only; ``purposes``: any of those."""
        query = select(File).where(File.account_id == account_id)
        if purpose is not None:
            query = query.where(File.purpose == purpose)
        if purposes is not None:
            query = query.where(File.purpose.in_(sorted(purposes)))
        if after is not None:
            query = query.where(File.id < after)
        async with self.db.read() as session:
            rows = list(await session.scalars(query.order_by(File.id.desc()).limit(limit + 1)))
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    async def delete(self, account_id: str, file_id: str) -> FileRecord:
        record = await self.get(account_id, file_id)
        async with self.db.session() as session:
            removed = await session.execute(delete(File).where(File.id == file_id, File.account_id == account_id))
            if removed.rowcount == 1:  # type: ignore[attr-defined]  # not when a concurrent delete came first
                await self.quota.release(session, account_id, record.bytes)
        await self.blobs.delete(record.id)
        return record


def _record(row: File) -> FileRecord:
    return FileRecord(row.id, row.account_id, row.purpose, row.filename, row.bytes, row.content_type, row.created_at)
