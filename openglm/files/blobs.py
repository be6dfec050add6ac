"""Blob storage behind one small interface; a directory by default, an object store can implement it."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class LocalBlobStore:
    """Files under ``root``; writes go to a temporary name first, so a crash never leaves half a blob."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)

    def _path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temporary = path.with_name(f".{key}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the owner's alone, like the directory
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)

    async def put_file(self, key: str, source: Path) -> None:
        """Move the file at ``source`` in as ``key`` (a large blob a job wrote: a merged model), never read into
        memory; renamed when on the same filesystem, else copied in a thread first."""
        path = self._path(key)
        temporary = path.with_name(f".{key}.{secrets.token_hex(4)}")
        try:
            os.rename(source, temporary)
        except OSError:  # another filesystem
            await asyncio.to_thread(shutil.copyfile, source, temporary)
            source.unlink()
        temporary.chmod(0o600)
        os.replace(temporary, path)

    async def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
