"""The per-account storage quota on a real SQLite file and a real PostgreSQL database: concurrent files cannot
both pass a check only one fits, the counter moves with the file rows (never without them), and the operator's
quota for an account overrides the default."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from openglm.config import Settings
from openglm.errors import StorageQuotaError
from openglm.files.blobs import LocalBlobStore
from openglm.files.quota import UNLIMITED, quota_bytes_of
from openglm.files.store import FileStore
from openglm.store.db import Database
from openglm.store.models import Account, File

KB = 1024


async def accounts(database: Database, *names: str) -> None:
    async with database.session() as session:
        for name in names:
            session.add(Account(id=name, name=name))


async def kept(database: Database, account: str) -> int:
    async with database.read() as session:
        return int(
            await session.scalar(select(func.coalesce(func.sum(File.bytes), 0)).where(File.account_id == account))
        )


@pytest.mark.parametrize("rounds", [5])
async def test_concurrent_files_never_exceed_the_quota(database: Database, tmp_path: Path, rounds: int) -> None:
    store = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=10 * KB)
    for round_ in range(rounds):  # each round a fresh account and 25 files racing for its 10 KB
        account = f"acct_{round_}"
        await accounts(database, account)

        async def upload(n: int, account: str = account) -> bool:
            try:
                await store.create(account, "assistant", f"f{n}.bin", b"x" * KB)
            except StorageQuotaError:
                return False
            return True

        results = await asyncio.gather(*(upload(n) for n in range(25)))
        assert sum(results) == 10
        usage = await store.quota.usage(account)
        assert usage.used_bytes == await kept(database, account) == 10 * KB
    assert len(list((tmp_path / "blobs").iterdir())) == 10 * rounds  # a refused file leaves no blob
    await accounts(database, "acct_other")
    await store.create("acct_other", "assistant", "other.bin", b"y" * KB)  # another account's room is its own


async def test_deleting_gives_the_room_back_and_the_refusal_is_clear(database: Database, tmp_path: Path) -> None:
    await accounts(database, "acct_a")
    store = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=3 * KB)
    first = await store.create("acct_a", "assistant", "a.bin", b"x" * (2 * KB))
    with pytest.raises(
        StorageQuotaError,
        match=r"storage quota exceeded: the account keeps 2.0 KB of its 3.0 KB and this file needs 2.0 KB",
    ) as info:
        await store.create("acct_a", "assistant", "b.bin", b"x" * (2 * KB))
    assert info.value.status == 400 and info.value.code == "1210"
    await store.delete("acct_a", first.id)
    await store.create("acct_a", "assistant", "b.bin", b"x" * (2 * KB))
    assert (await store.quota.usage("acct_a")).used_bytes == await kept(database, "acct_a") == 2 * KB


async def test_the_operator_quota_overrides_the_default(database: Database, tmp_path: Path) -> None:
    await accounts(database, "acct_a")
    store = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=KB)
    usage = await store.quota.set_quota("acct_a", 4 * KB)
    assert (usage.quota_bytes, usage.account_quota) == (4 * KB, True)
    await store.create("acct_a", "assistant", "a.bin", b"x" * (3 * KB))
    await store.quota.set_quota("acct_a", None)  # back to the default, below what is kept: nothing is deleted
    usage = await store.quota.usage("acct_a")
    assert (usage.used_bytes, usage.quota_bytes, usage.account_quota) == (3 * KB, KB, False)
    with pytest.raises(StorageQuotaError):
        await store.create("acct_a", "assistant", "b.bin", b"x")
    unlimited = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=None)
    await unlimited.create("acct_a", "assistant", "c.bin", b"x" * (8 * KB))
    assert (await unlimited.quota.usage("acct_a")).used_bytes == await kept(database, "acct_a")


async def test_zero_is_nothing_and_minus_one_unlimited_everywhere(database: Database, tmp_path: Path) -> None:
    """The same numbers mean the same for the server's default and for an account's own quota."""
    assert Settings(storage_quota_mb=0).storage_quota_bytes() == 0
    assert Settings(storage_quota_mb=-1).storage_quota_bytes() is None
    assert quota_bytes_of(0) == 0 and quota_bytes_of(-1) == UNLIMITED and quota_bytes_of(2) == 2 * 1024 * KB
    await accounts(database, "acct_z", "acct_u")
    nothing = FileStore(
        database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=Settings(storage_quota_mb=0).storage_quota_bytes()
    )
    with pytest.raises(StorageQuotaError):  # a default of 0: nothing may be kept
        await nothing.create("acct_z", "assistant", "a.bin", b"x")
    usage = await nothing.quota.set_quota("acct_u", quota_bytes_of(-1))  # this account: no limit
    assert (usage.quota_bytes, usage.account_quota) == (None, True)
    await nothing.create("acct_u", "assistant", "big.bin", b"x" * (64 * KB))
    usage = await nothing.quota.set_quota("acct_u", quota_bytes_of(0))  # and now nothing more
    assert (usage.used_bytes, usage.quota_bytes, usage.account_quota) == (64 * KB, 0, True)
    with pytest.raises(StorageQuotaError):
        await nothing.create("acct_u", "assistant", "b.bin", b"x")
    with pytest.raises(ValueError):
        await nothing.quota.set_quota("acct_u", -2)


async def test_a_file_row_that_fails_takes_its_bytes_back(database: Database, tmp_path: Path) -> None:
    store = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=10 * KB)
    with pytest.raises(Exception):  # noqa: B017 - no such account: the row's foreign key fails
        await store.create("acct_missing", "assistant", "a.bin", b"x" * KB)
    assert (await store.quota.usage("acct_missing")).used_bytes == 0
    assert list((tmp_path / "blobs").iterdir()) == []
