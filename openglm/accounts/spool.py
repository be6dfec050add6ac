"""The usage spool: settled calls the database would not take, kept on disk until it does.

A call's answer has been delivered by the time it settles, so a settlement that fails after its retries cannot
refuse anything; dropping the record would lose a charge. Instead it appends the record (``UsageEntry``) as one
JSON line to ``unrecorded-usage.jsonl`` in the data directory (0600, fsync'd, under an exclusive ``flock`` so the
server and the CLI never interleave). ``replay`` writes every line into the database — the same record already
there (an attempt that committed but reported an error) is only dropped from the spool — and keeps what still
fails, or conflicts with a different record of the same id.
It runs when the server starts and with ``openglm db replay-usage``; ``openglm db verify`` fails while the spool
is not empty, and ``/health`` reports how many calls are waiting in it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from ..store.db import Database
from ..store.models import UsageRecord
from .recording import UsageEntry, write_usage

log = logging.getLogger(__name__)

SPOOL_NAME = "unrecorded-usage.jsonl"


def spool_path(data_dir: Path) -> Path:
    return data_dir / SPOOL_NAME


@dataclass(frozen=True)
class Replayed:
    recorded: int  # written into the database now
    present: int  # already in the database (dropped from the spool)
    kept: int  # still failing, or unreadable: left in the spool


class UsageSpool:
    def __init__(self, path: Path):
        self.path = path
        self._counted: tuple[int, int, int] | None = None  # (mtime_ns, size, entries) of the last count

    def append(self, entry: UsageEntry) -> None:
        """Keep one entry, durably, before returning."""
        line = (json.dumps(entry.to_json(), separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # and with it the lock

    def pending(self) -> int:
        """Entries waiting in the spool (``/health`` asks on every probe: the file is read again only when it
        has changed)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return 0
        if self._counted is None or self._counted[:2] != (info.st_mtime_ns, info.st_size):
            entries = sum(1 for line in self.path.read_bytes().splitlines() if line.strip())
            self._counted = (info.st_mtime_ns, info.st_size, entries)
        return self._counted[2]

    async def replay(self, db: Database) -> Replayed:
        """Write the spooled entries into ``db``; leave in the spool only those that still fail."""
        if not self.path.exists():
            return Replayed(0, 0, 0)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            lines = [line for line in _read_all(fd).splitlines() if line.strip()]
            recorded = present = 0
            kept: list[bytes] = []
            for line in lines:
                outcome = await _replay_line(db, line)
                recorded += outcome == "recorded"
                present += outcome == "present"
                if outcome == "kept":
                    kept.append(line)
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"".join(line + b"\n" for line in kept), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Replayed(recorded, present, len(kept))


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


async def _replay_line(db: Database, line: bytes) -> str:
    try:
        entry = UsageEntry.from_json(json.loads(line))
    except (ValueError, TypeError):
        log.error("unreadable line in the usage spool, kept for an operator: %r", line[:500])
        return "kept"
    try:
        found = await db.fetch(
            select(
                UsageRecord.account_id, UsageRecord.cost, UsageRecord.prompt_tokens, UsageRecord.completion_tokens
            ).where(UsageRecord.id == entry.id)
        )
        if found:
            if tuple(found[0]) == (entry.account_id, entry.cost, entry.prompt_tokens, entry.completion_tokens):
                return "present"  # the attempt that reported an error had committed
            log.error("spooled usage %s conflicts with a different record of that id; kept for an operator", entry.id)
            return "kept"
        async with db.writing() as connection:
            await write_usage(connection, entry)
    except Exception:
        log.exception("spooled usage %s still cannot be recorded; it stays in the spool", entry.id)
        return "kept"
    return "recorded"
