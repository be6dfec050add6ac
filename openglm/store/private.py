"""Files on disk only the server's own user can read: the data directory 0700, the SQLite database and its
``-wal`` / ``-shm`` / ``-journal`` files 0600. (Blobs are written 0600 by ``files/blobs.py``; the master key by
``accounts/sealing.py``.) The process umask is left alone: the sandboxes' kernels inherit it, and their files
belong to them."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """``path`` made (with its parents) if missing, and 0700 — an existing install's 0755 is tightened."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        log.warning("%s was open to other users; made it owner-only (0700)", path)
        path.chmod(0o700)


def private_sqlite_file(database: Path) -> None:
    """The database file exists, 0600, before SQLite opens it: SQLite gives the ``-wal`` and ``-shm`` files it
    makes the database file's mode. Existing files of an older install are tightened. Its directory is made
    0700 when it has to be created (an existing one, e.g. /tmp for a test database, is left as it is)."""
    if not database.parent.exists():
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in SQLITE_COMPANIONS:
        path = database.with_name(database.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
