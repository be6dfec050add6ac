"""Real databases for tests: a SQLite file, a fresh database on the machine's PostgreSQL (127.0.0.1:5432), or a
fresh database on a PostgreSQL with pgvector that the tests start themselves (the `pgserver` package)."""

from __future__ import annotations

import os
import secrets
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

POSTGRES_ADMIN = os.environ.get("OPENGLM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database(admin: str = POSTGRES_ADMIN) -> Iterator[str]:
    """A new, empty database for one test (or one server), dropped afterwards."""
    name = f"openglm_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
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
    """``kind``: sqlite, postgresql, or pgvector (needs the admin URL of a ``pgvector_server``)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'openglm.db'}"
    elif kind == "postgresql":
        with postgres_database() as url:
            yield url
    elif kind == "pgvector" and pgvector_admin:
        with postgres_database(pgvector_admin) as url:
            yield url
    else:
        raise ValueError(kind)
