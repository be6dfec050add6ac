"""The migrated schema matches the models, migrating is idempotent, and SQLite runs in WAL with foreign keys on.

Drift is found by Alembic's own autogenerate comparison, on a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, event, text
from sqlalchemy.exc import IntegrityError

from openglm.store.db import Database, alembic_config, open_database
from openglm.store.models import Account, Base, User

TABLES = {
    "meta",
    "accounts",
    "users",
    "api_keys",
    "usage_records",
    "ledger_entries",
    "account_balances",
    "balance_reservations",
    "files",
    "account_storage",
    "knowledge_bases",
    "knowledge_documents",
    "knowledge_chunks",
    "agents",
    "agent_versions",
    "conversations",
    "conversation_messages",
    "jobs",
    "job_events",
    "fine_tuned_models",
    "eval_runs",
    "batches",
    "batch_lines",
    "moderation_hits",
    "responses",
}
# The full-text index, which no model describes: on SQLite an FTS5 table (and the shadow tables FTS5 makes), on
# PostgreSQL a GIN index on an expression.
FULL_TEXT = "knowledge_chunks_fts"
FULL_TEXT_INDEX = "ix_knowledge_chunks_search"
FULL_TEXT_TRIGGERS = {f"knowledge_chunks_fts_{action}" for action in ("insert", "delete", "update")}
APPEND_ONLY = {"usage_records", "ledger_entries"}
HEAD = "0019"  # the latest migration
BALANCE_TRIGGERS = {
    "accounts_open_balance",
    "ledger_entries_move_balance",
    "balance_reservations_hold",
    "balance_reservations_release",
}


def schema_diff(connection: Connection, metadata: MetaData = Base.metadata) -> list[Any]:
    def modelled(name: str | None, kind: str, _parent: Any) -> bool:
        if kind == "index":
            return name != FULL_TEXT_INDEX
        return not (kind == "table" and name is not None and name.startswith(FULL_TEXT))

    opts = {"compare_type": True, "compare_server_default": True, "include_name": modelled}
    context = MigrationContext.configure(connection, opts=opts)
    # Triggers and the trigger function are invisible to autogenerate, so nothing needs filtering out for them.
    return list(compare_metadata(context, metadata))


async def diff_against(database: Database, metadata: MetaData = Base.metadata) -> list[Any]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(schema_diff, metadata)


async def scalar(database: Database, sql: str) -> Any:
    async with database.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def trigger_names(database: Database) -> set[str]:
    if database.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    async with database.engine.connect() as conn:
        return {name for (name,) in await conn.execute(text(sql))}


async def table_names(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))


# --- models vs migrations ------------------------------------------------------------


async def test_migrated_schema_matches_the_models(database: Database) -> None:
    assert await diff_against(database) == []


async def test_the_comparison_does_see_drift(database: Database) -> None:
    """Guards the test above: a model the migrations do not match is reported."""
    drifted = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["accounts"].append_column(Column("nickname", Integer))
    diff = await diff_against(database, drifted)
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "accounts", "nickname")]


async def test_tables_version_and_triggers(database: Database) -> None:
    tables = {t for t in await table_names(database) if not t.startswith(FULL_TEXT)}
    assert tables == TABLES | {"alembic_version"}
    assert await scalar(database, "SELECT version_num FROM alembic_version") == HEAD
    if database.dialect == "sqlite":
        expected = {f"{table}_no_{action}" for table in APPEND_ONLY for action in ("update", "delete")}
        expected |= FULL_TEXT_TRIGGERS
    else:
        expected = {f"{table}_{kind}" for table in APPEND_ONLY for kind in ("append_only", "no_truncate")}
        assert await scalar(database, "SELECT count(*) FROM pg_proc WHERE proname = 'openglm_append_only'") == 1
    assert await trigger_names(database) == expected | BALANCE_TRIGGERS


# --- idempotence ---------------------------------------------------------------------


async def test_migrating_twice_is_a_no_op(database: Database, db_url: str) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_1", name="acme"))
    triggers = await trigger_names(database)

    await database.migrate()
    reopened = await open_database(db_url)
    try:
        for db in (database, reopened):
            assert await scalar(db, "SELECT count(*) FROM alembic_version") == 1
            assert await scalar(db, "SELECT version_num FROM alembic_version") == HEAD
            assert await scalar(db, "SELECT name FROM accounts WHERE id = 'acct_1'") == "acme"
            assert await trigger_names(db) == triggers
            assert await diff_against(db) == []
    finally:
        await reopened.close()


# --- data migrations -------------------------------------------------------------------


async def migrate_to(database: Database, revision: str) -> None:
    def run(connection: Connection) -> None:
        if revision == "head":
            command.upgrade(alembic_config(connection), revision)
        else:
            command.downgrade(alembic_config(connection), revision)

    async with database.engine.connect() as connection, connection.begin():
        await connection.run_sync(run)


async def execute(database: Database, sql: str, **values: Any) -> None:
    async with database.engine.connect() as connection, connection.begin():
        await connection.execute(text(sql), values)


async def test_0011_counts_the_glm_versions_already_kept(database: Database) -> None:
    """GLM configurations joined the storage quota in 0011: existing versions get their UTF-8 size, and each
    account's counter grows by them (whether it had a row for its files or not); downgrading takes them back out."""
    await migrate_to(database, "0010")
    now = datetime.now(UTC)
    configs = {"acct_1": ['{"instructions": "诗人"}', '{"instructions": "poet"}'], "acct_2": ['{"x": "ééé"}']}
    for account, texts in configs.items():
        await execute(
            database,
            "INSERT INTO accounts (id, name, status, created_at) VALUES (:a, :a, 'active', :t)",
            a=account,
            t=now,
        )
        await execute(
            database,
            "INSERT INTO agents (id, account_id, name, description, avatar, visibility, recommended, version, uses, "
            "created_at, updated_at) VALUES (:g, :a, 'g', '', '', 'private', 0, :v, 0, :t, :t)",
            g=f"glm_{account}",
            a=account,
            v=len(texts),
            t=now,
        )
        for number, config in enumerate(texts, start=1):
            await execute(
                database,
                "INSERT INTO agent_versions (agent_id, version, config, created_at) VALUES (:g, :v, :c, :t)",
                g=f"glm_{account}",
                v=number,
                c=config,
                t=now,
            )
    await execute(database, "INSERT INTO account_storage (account_id, used_bytes) VALUES ('acct_1', 100)")
    await migrate_to(database, "head")
    sizes = {a: sum(len(c.encode()) for c in texts) for a, texts in configs.items()}
    assert (
        await scalar(database, "SELECT used_bytes FROM account_storage WHERE account_id = 'acct_1'")
        == 100 + sizes["acct_1"]
    )
    assert (
        await scalar(database, "SELECT used_bytes FROM account_storage WHERE account_id = 'acct_2'") == sizes["acct_2"]
    )
    assert await scalar(database, "SELECT SUM(bytes) FROM agent_versions") == sum(sizes.values())
    await migrate_to(database, "0010")
    assert await scalar(database, "SELECT used_bytes FROM account_storage WHERE account_id = 'acct_1'") == 100
    assert await scalar(database, "SELECT used_bytes FROM account_storage WHERE account_id = 'acct_2'") == 0
    await migrate_to(database, "head")
    assert await diff_against(database) == []


# --- constraints -----------------------------------------------------------------------


async def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(User(id="user_1", account_id="acct_missing", name="ada", created_at=datetime.now(UTC)))


async def test_account_names_are_unique(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_1", name="acme"))
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(Account(id="acct_2", name="acme"))


# --- SQLite specifics ------------------------------------------------------------------


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> Any:
    db = await open_database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'openglm.db'}")
    yield db
    await db.close()


async def test_sqlite_file_and_its_directory_are_created(sqlite_database: Database, tmp_path: Path) -> None:
    assert (tmp_path / "nested" / "dir" / "openglm.db").is_file()


async def test_sqlite_runs_in_wal_with_foreign_keys_on(sqlite_database: Database) -> None:
    assert await scalar(sqlite_database, "PRAGMA journal_mode") == "wal"
    assert await scalar(sqlite_database, "PRAGMA foreign_keys") == 1
    assert await scalar(sqlite_database, "PRAGMA busy_timeout") == 30000


async def test_sqlite_wal_is_a_property_of_the_file(sqlite_database: Database, tmp_path: Path) -> None:
    import sqlite3

    plain = sqlite3.connect(tmp_path / "nested" / "dir" / "openglm.db")
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        plain.close()


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    # Runs after the Database's own pragmas, so a blocked BEGIN fails in 0.2 s instead of 30 s.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=200")
    cursor.close()


async def test_sqlite_reader_runs_while_a_write_transaction_is_open(sqlite_database: Database) -> None:
    reader = Database(sqlite_database.url)
    event.listen(reader.engine.sync_engine, "connect", _short_busy_timeout)
    try:
        async with sqlite_database.session() as writing:
            writing.add(Account(id="acct_1", name="acme"))
            await writing.flush()
            async with reader.engine.connect() as conn:
                seen = (await conn.execute(text("SELECT count(*) FROM accounts"))).scalar_one()
        assert seen == 0  # the reader sees the last committed state, without waiting
    finally:
        await reader.close()
