"""One ``Database``: an async SQLAlchemy engine for SQLite (default) or PostgreSQL, migrated on open."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, Executable, Row, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from .private import private_sqlite_file

log = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """A migration refused (and rolled back) because of what it would have left in the database."""


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every replica running migrations.
_MIGRATION_LOCK = 0x6F70656E676C6D
_WRITES = "openglm_writes"


def async_url(url: str) -> str:
    """Accept the URLs people write (``postgresql://``, ``sqlite:///``) and pick the async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use sqlite:/// or postgresql://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver so that write transactions can start IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer commits; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY) when another writer got in
    # between; a writing session takes the write lock up front (IMMEDIATE) and so queues on busy_timeout instead.
    # Readers stay deferred: under WAL they read the last commit without waiting for writers.
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITES, False) else "BEGIN")


def _inline_sqlite_reader(url: str) -> Engine:
    """A synchronous engine over one connection, used only from the event loop's thread, for reads."""
    sync_url = make_url(url).set(drivername="sqlite").render_as_string(hide_password=False)
    engine = create_engine(sync_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class Database:
    def __init__(self, url: str, *, echo: bool = False):
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        # Every use is inside a transaction that commits or rolls back, so the pool's own rollback on return
        # would be one more round trip per checkout for nothing.
        options: dict[str, Any] = {"echo": echo, "pool_reset_on_return": None}
        if self.dialect == "postgresql":
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single-statement reads on the hot path need no transaction: no BEGIN / COMMIT round trips.
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inline_reader = _inline_sqlite_reader(url) if self.dialect == "sqlite" else None
        # SQLite has one writer. Queueing this process's writers here, in order, beats letting them collide in
        # SQLite's busy handler, which sleeps in steps of up to 100 ms (the cause of a long latency tail).
        # Other processes (the CLI, a second server on the same file) still queue on busy_timeout.
        self._writer = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction that may write: committed on success, rolled back on any error.
        Do not open one inside another in the same task: on SQLite the second would wait for the first."""
        async with self._write_turn(), self._sessions() as session, session.begin():
            await session.connection(execution_options={_WRITES: True})
            yield session

    async def fetch(self, statement: Executable) -> Sequence[Row[Any]]:
        """One read on the hot path (key lookup, balance): a single Core statement, no transaction, no ORM.
        It sees the latest commit; use ``read()`` when several reads must agree.

        On SQLite it runs inline on the event loop: a WAL reader never waits for a lock, so a ~50 µs query
        costs less than the ten thread hand-offs aiosqlite needs for it, which under load also fight the
        engine's threads for the GIL."""
        if self._inline_reader is not None:
            with self._inline_reader.connect() as connection:
                return connection.execute(statement).all()
        async with self._autocommit.connect() as connection:
            return (await connection.execute(statement)).all()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection in a transaction that writes (see ``session`` for the SQLite rules)."""
        async with self._write_turn(), self.engine.connect() as connection:
            await connection.execution_options(**{_WRITES: True})
            async with connection.begin():
                yield connection

    async def write_one(self, statement: Executable) -> int:
        """One statement that writes and is atomic by itself (its triggers included); the rows it touched (give
        it RETURNING for an exact count: drivers report none for some statements, e.g. INSERT … SELECT). On
        PostgreSQL it runs in autocommit: one round trip, no BEGIN or COMMIT. On SQLite it takes the writer's
        turn like any write transaction."""
        if self._writer is None:
            async with self._autocommit.connect() as connection:
                return _touched(await connection.execute(statement))
        async with self.writing() as connection:
            return _touched(await connection.execute(statement))

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        if self._writer is None:
            yield
        else:
            async with self._writer:
                yield

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads; on SQLite it never waits for writers."""
        async with self._sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{_WRITES: True})
            if self.dialect == "sqlite":
                await _migrate_sqlite(connection)
                return
            async with connection.begin():
                await self._upgrade_in(connection)

    async def _upgrade_in(self, connection: AsyncConnection) -> None:
        if self.dialect == "postgresql":  # replicas starting together migrate one at a time
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        await connection.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._inline_reader is not None:
            self._inline_reader.dispose()


async def _migrate_sqlite(connection: AsyncConnection) -> None:
    """Migrations on SQLite run with foreign keys off. Alembic's batch mode rebuilds a table (a new one, the rows
    copied, the old one dropped, the new one renamed), and with foreign keys on SQLite's DROP TABLE first deletes
    the old table's rows, which fails (or cascades) when other rows reference them. The pragma is a no-op inside
    a transaction, so it is set on the connection before the migration's transaction and set back after it.
    What the check finds broken afterwards that was not broken before rolls the migration back."""
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await _pragma(driver, "foreign_keys=OFF")
    try:
        async with connection.begin():
            if not await connection.run_sync(_pending):
                return  # nothing to migrate (every start): no need to scan the references
            before = await _foreign_key_violations(connection)
            await connection.run_sync(_upgrade)
            introduced = await _foreign_key_violations(connection) - before
            if introduced:
                raise MigrationError(
                    "the migration would leave rows referencing rows that do not exist (table → referenced table: "
                    f"count): {_describe(introduced)}; nothing was changed"
                )
        if before:
            log.warning(
                "the database already had rows referencing rows that do not exist before it was migrated (table → "
                "referenced table: count): %s; `PRAGMA foreign_key_check` lists them",
                _describe(before),
            )
    finally:
        try:
            await _pragma(driver, "foreign_keys=ON")
        except Exception:  # a connection left with foreign keys off must not go back to the pool
            log.exception("could not turn SQLite's foreign keys back on after migrating; dropping the connection")
            await connection.invalidate()


async def _pragma(driver: Any, pragma: str) -> None:
    cursor = await driver.execute(f"PRAGMA {pragma}")
    await cursor.close()


async def _foreign_key_violations(connection: AsyncConnection) -> Counter[tuple[str, str]]:
    """SQLite's ``foreign_key_check``, as (table, referenced table) → rows: row ids and constraint numbers are not
    kept across a table rebuild, so only the counts per pair compare before and after."""
    rows = await connection.execute(text("PRAGMA foreign_key_check"))
    return Counter((str(row[0]), str(row[2])) for row in rows)


def _describe(violations: Counter[tuple[str, str]]) -> str:
    return ", ".join(f"{table} → {parent}: {count}" for (table, parent), count in sorted(violations.items()))


def _touched(result: CursorResult[Any]) -> int:
    return len(result.all()) if result.returns_rows else int(result.rowcount)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _pending(connection: Connection) -> bool:
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current != set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def open_database(url: str) -> Database:
    """Open and migrate; a SQLite file (and its directory, on first run) is made owner-only (``private.py``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        private_sqlite_file(Path(parsed.database))
    database = Database(url)
    try:
        await database.migrate()
    except Exception:
        await database.close()
        raise
    return database
