"""Pictures drawn for an account and kept as its files (``ImageService.draw``) on a real database, a real blob store
and a real OpenAI-compatible image server: a batch is kept whole or not at all, and what was drawn is counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from openglm.catalog import Catalog, ModelSpec
from openglm.errors import StorageQuotaError
from openglm.files.blobs import LocalBlobStore
from openglm.files.store import FileRecord, FileStore
from openglm.images.service import ImageService
from openglm.serving.usage import Tally
from openglm.store.db import Database
from openglm.store.models import Account, File

from ...fixtures.image_server import ImageServer, png

KB = 1024
MEANWHILE = 3 * KB - len(png())  # all the room the first picture left


@pytest.fixture(scope="module")
def provider() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.stop()


def service(provider: ImageServer) -> tuple[ImageService, ModelSpec]:
    spec = ModelSpec(id="cogview-3", engine="openai", source=provider.url)
    return ImageService(Catalog([], images=[spec])), spec


class RacedFileStore(FileStore):
    """A file store where another upload of the same account lands right after the first picture is kept, taking
    the room the batch was checked for (the race a check before writing cannot close)."""

    async def create(
        self, account_id: str, purpose: str, filename: str, data: bytes, content_type: str = ""
    ) -> FileRecord:
        record = await super().create(account_id, purpose, filename, data, content_type)
        if filename == "image-0.png":
            await super().create(account_id, "assistant", "meanwhile.bin", b"m" * MEANWHILE)
        return record


async def test_a_batch_that_loses_its_room_midway_is_removed_and_still_counted(
    database: Database, tmp_path: Path, provider: ImageServer
) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_p", name="acct_p"))
    files = RacedFileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=3 * KB)
    images, spec = service(provider)
    tally = Tally()
    with pytest.raises(StorageQuotaError, match="3 picture\\(s\\) were drawn, and are charged"):
        await images.draw("acct_p", spec, "a red square", n=3, files=files, tally=tally)
    assert tally.images == 3  # billed: the provider drew (and was paid for) all three
    async with database.read() as session:
        kept = list(await session.scalars(select(File.filename).where(File.account_id == "acct_p")))
    assert kept == ["meanwhile.bin"]  # the picture kept before the race was removed again
    assert (await files.quota.usage("acct_p")).used_bytes == MEANWHILE
    assert len(list((tmp_path / "blobs").iterdir())) == 1  # and its blob


async def test_pictures_are_kept_or_answered_inline(database: Database, tmp_path: Path, provider: ImageServer) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_q", name="acct_q"))
    files = FileStore(database, LocalBlobStore(tmp_path / "blobs"), quota_bytes=KB)
    images, spec = service(provider)
    tally = Tally()
    kept = await images.draw("acct_q", spec, "a red square", n=2, files=files, tally=tally)
    assert [p.file is not None for p in kept] == [True, True] and tally.images == 2
    inline = await images.draw("acct_q", spec, "a red square", n=2, files=None, tally=(other := Tally()))
    assert [p.file for p in inline] == [None, None] and inline[0].image.png == png() and other.images == 2
    # The account has room for fewer than 20 pictures of the size it has seen: refused before drawing.
    asked = len(provider.requests)
    with pytest.raises(StorageQuotaError):
        await images.draw("acct_q", spec, "a red square", n=20, files=files, tally=(refused := Tally()))
    assert len(provider.requests) == asked and refused.images == 0
