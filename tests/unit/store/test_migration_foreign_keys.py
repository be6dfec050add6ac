"""Upgrading an install that has data: table rebuilds must keep every row and every reference.

On SQLite, Alembic's batch mode rebuilds a table (a new table, the rows copied, the old one dropped, the new one
renamed). With foreign keys on, SQLite's DROP TABLE first deletes every row of the old table, which fails when
other rows reference it (usage records → their key, keys → their user): an install with data could not upgrade.
Migrations now run on SQLite with foreign keys off, and are refused only when they leave references broken that
were not broken before.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from openglm.store import db as db_module
from openglm.store.db import Database, MigrationError

from .test_migrations import HEAD, diff_against, execute, migrate_to, scalar

NOW = datetime(2026, 11, 30, tzinfo=UTC)
# Every table the data below touches, with its row count once it is in.
ROWS = {
    "accounts": 2,
    "users": 2,
    "api_keys": 3,
    "usage_records": 2,
    "ledger_entries": 4,
    "agents": 1,
    "agent_versions": 2,
    "conversations": 1,
    "conversation_messages": 2,
    "files": 1,
}


async def insert(database: Database, table: str, **values: Any) -> None:
    columns = ", ".join(values)
    names = ", ".join(f":{k}" for k in values)
    await execute(database, f"INSERT INTO {table} ({columns}) VALUES ({names})", **values)


async def fill(database: Database, revision: str) -> None:
    """What an install has after some use: accounts and users, keys (a child key where the revision knows
    parents), usage records charged to keys, grants and charges, a GLM with two versions, a conversation pinned
    to a version, and a file."""
    for account in ("acct_1", "acct_2"):
        await insert(database, "accounts", id=account, name=account, status="active", created_at=NOW)
        await insert(database, "users", id=f"user_{account}", account_id=account, name="ada", created_at=NOW)
    key = {"scope": "user", "status": "active", "secret_hint": "abcd", "created_at": NOW}
    await insert(database, "api_keys", id="key_root", account_id="acct_1", user_id="user_acct_1", name="root", **key)
    await insert(database, "api_keys", id="key_2", account_id="acct_2", user_id="user_acct_2", name="two", **key)
    child = {"parent_id": "key_root"} if revision >= "0009" else {}
    await insert(database, "api_keys", id="key_child", account_id="acct_1", name="child", **key, **child)
    for account in ("acct_1", "acct_2"):
        await insert(
            database, "ledger_entries", account_id=account, kind="grant", amount=10**10, note="grant", created_at=NOW
        )
    for usage, key_id, account in (("chatcmpl-1", "key_child", "acct_1"), ("chatcmpl-2", "key_2", "acct_2")):
        await insert(
            database,
            "usage_records",
            id=usage,
            request_id=usage,
            account_id=account,
            key_id=key_id,
            model="glm-4",
            endpoint="chat.completions",
            prompt_tokens=10,
            completion_tokens=5,
            images=0,
            cost=1000,
            status="succeeded",
            started_at=NOW,
            created_at=NOW,
        )
        await insert(
            database,
            "ledger_entries",
            account_id=account,
            kind="charge",
            amount=-1000,
            usage_id=usage,
            note="chat.completions",
            created_at=NOW,
        )
    await insert(
        database,
        "agents",
        id="glm_1",
        account_id="acct_1",
        user_id="user_acct_1",
        name="poet",
        description="",
        avatar="",
        visibility="private",
        recommended=0,
        version=2,
        uses=1,
        created_at=NOW,
        updated_at=NOW,
    )
    for version in (1, 2):
        config = f'{{"instructions": "v{version}"}}'
        await insert(database, "agent_versions", agent_id="glm_1", version=version, config=config, created_at=NOW)
    await insert(
        database,
        "conversations",
        account_id="acct_1",
        id="conv_1",
        assistant_id="glm_1",
        agent_version=1,
        title="t",
        prompt_tokens=1,
        completion_tokens=1,
        created_at=NOW,
        updated_at=NOW,
    )
    for seq, role in enumerate(("user", "assistant")):
        await insert(
            database,
            "conversation_messages",
            account_id="acct_1",
            conversation_id="conv_1",
            seq=seq,
            role=role,
            content="hi",
            created_at=NOW,
        )
    await insert(
        database,
        "files",
        id="file_1",
        account_id="acct_1",
        purpose="batch",
        filename="a.jsonl",
        bytes=10,
        content_type="application/jsonl",
        created_at=NOW,
    )


async def foreign_key_violations(database: Database) -> list[Any]:
    if database.dialect != "sqlite":
        return []  # PostgreSQL never lets a reference break
    async with database.engine.connect() as connection:
        return list(await connection.execute(text("PRAGMA foreign_key_check")))


@pytest.mark.parametrize("start", ["0007", "0009"])
async def test_an_install_with_data_upgrades_with_every_row_kept(database: Database, start: str) -> None:
    """From 0007, 0008 rebuilds ``users`` and ``api_keys`` and 0009 ``api_keys`` again (both referenced by keys,
    usage records and GLMs); 0011 rebuilds ``agent_versions``. Before the fix the upgrade from 0007 failed on
    SQLite with "FOREIGN KEY constraint failed" at 0008's rebuild of ``users``."""
    await migrate_to(database, start)
    await fill(database, start)
    await database.migrate()
    assert await scalar(database, "SELECT version_num FROM alembic_version") == HEAD
    for table, count in ROWS.items():
        assert await scalar(database, f"SELECT count(*) FROM {table}") == count, table
    assert await scalar(database, "SELECT user_id FROM api_keys WHERE id = 'key_root'") == "user_acct_1"
    assert await scalar(database, "SELECT key_id FROM usage_records WHERE id = 'chatcmpl-1'") == "key_child"
    expected_parent = "key_root" if start >= "0009" else None
    assert await scalar(database, "SELECT parent_id FROM api_keys WHERE id = 'key_child'") == expected_parent
    assert await scalar(database, "SELECT balance FROM account_balances WHERE account_id = 'acct_1'") == 10**10 - 1000
    assert await scalar(database, "SELECT SUM(bytes) FROM agent_versions") > 0
    assert await foreign_key_violations(database) == []
    assert await diff_against(database) == []
    if database.dialect == "sqlite":
        # The connection the migration ran on is back in the pool with foreign keys on again.
        assert await scalar(database, "PRAGMA foreign_keys") == 1


async def test_violations_found_before_the_upgrade_are_reported_not_refused(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL cannot hold a broken reference")
    await migrate_to(database, "0007")
    await fill(database, "0007")
    # An orphan a past bug (or a hand edit) left behind, written by a plain connection (foreign keys off).
    plain = sqlite3.connect(make_url(database.url).database or "")
    with plain:
        plain.execute("INSERT INTO users (id, account_id, name, created_at) VALUES ('user_x', 'gone', 'x', '2026')")
    plain.close()
    with caplog.at_level(logging.WARNING, logger="openglm.store.db"):
        await database.migrate()
    assert await scalar(database, "SELECT version_num FROM alembic_version") == HEAD
    assert "users" in caplog.text and "already" in caplog.text


async def test_a_migration_that_breaks_references_is_refused(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("on PostgreSQL the database itself refuses a broken reference")
    await migrate_to(database, "0010")
    await fill(database, "0010")
    upgrade = db_module._upgrade

    def breaking(connection: Connection) -> None:
        upgrade(connection)
        connection.exec_driver_sql("DELETE FROM users WHERE id = 'user_acct_1'")  # api_keys and agents point at it

    monkeypatch.setattr(db_module, "_upgrade", breaking)
    with pytest.raises(MigrationError, match="users"):
        await database.migrate()
    assert await scalar(database, "SELECT version_num FROM alembic_version") == "0010"  # rolled back
    assert await scalar(database, "SELECT count(*) FROM users") == 2
    assert await scalar(database, "PRAGMA foreign_keys") == 1
