"""Real databases for tests: a SQLite file, a fresh database on the machine's PostgreSQL (127.0.0.1:5432), or a
fresh database on a PostgreSQL with pgvector that the tests start themselves (the `pgserver` package).

``database_url`` gives a database already migrated to the head revision, copied from one migrated once per test
process (PostgreSQL: ``CREATE DATABASE ... TEMPLATE``; SQLite: a copy of the file): migrating each of some 600
databases took about 0.45 s, a copy takes 0.03-0.12 s. ``postgres_database`` alone gives an empty one (the
migration tests and servers that migrate their own)."""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import shutil
import socket
import sqlite3
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

POSTGRES_ADMIN = os.environ.get("OPENGLM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database(admin: str = POSTGRES_ADMIN, template: str | None = None) -> Iterator[str]:
    """A new database for one test (or one server), dropped afterwards: empty, or a copy of ``template``."""
    name = f"openglm_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def pgvector_server(pgdata: Path) -> Iterator[str]:
    """pgserver's PostgreSQL (it bundles the `vector` extension) in ``pgdata``, on a free loopback port; yields
    its admin URL and stops it afterwards. As root, pgserver runs it as its own system user."""
    with warnings.catch_warnings():  # platformdirs, on import: no XDG_RUNTIME_DIR here, /tmp/runtime-<uid> it is
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl
        from pgserver.utils import PostmasterInfo

    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        # pgserver listens on a Unix socket only; a restart with these options adds a TCP port on loopback.
        socket_dir = server.get_postmaster_info().socket_dir
        port = free_port()
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir}"
        pg_ctl(["-w", "-o", options, "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)  # what cleanup() stops
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database_url(kind: str, tmp_path: Path, pgvector_admin: str | None = None) -> Iterator[str]:
    """``kind``: sqlite, postgresql (both migrated to head), or pgvector (empty; needs the admin URL of a
    ``pgvector_server``)."""
    if kind == "sqlite":
        shutil.copyfile(_migrated_sqlite(), tmp_path / "openglm.db")
        yield f"sqlite:///{tmp_path / 'openglm.db'}"
    elif kind == "postgresql":
        with postgres_database(template=_migrated_postgres()) as url:
            yield url
    elif kind == "pgvector" and pgvector_admin:
        with postgres_database(pgvector_admin) as url:
            yield url
    else:
        raise ValueError(kind)


_migrated: dict[str, str] = {}
_lock = threading.Lock()


def _migrate(url: str) -> None:
    """``open_database`` migrates; in a thread of its own, since a test's event loop may be running here."""
    from openglm.store.db import open_database

    async def run() -> None:
        database = await open_database(url)
        await database.close()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


def _migrated_sqlite() -> str:
    with _lock:
        if "sqlite" not in _migrated:
            home = Path(tempfile.mkdtemp(prefix="openglm-template-"))
            atexit.register(shutil.rmtree, home, ignore_errors=True)
            path = home / "openglm.db"
            _migrate(f"sqlite:///{path}")
            with sqlite3.connect(path) as connection:  # everything in the main file, nothing left in the WAL
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _migrated["sqlite"] = str(path)
        return _migrated["sqlite"]


def _migrated_postgres() -> str:
    with _lock:
        if "postgresql" not in _migrated:
            name = f"openglm_template_{secrets.token_hex(6)}"
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            atexit.register(_drop, name)
            _migrate(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}")
            _migrated["postgresql"] = name
        return _migrated["postgresql"]


def _drop(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
