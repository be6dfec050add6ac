"""A SQLite database the server opens is its own user's alone: the file 0600 before SQLite opens it (so the -wal
and -shm SQLite makes are 0600 too), a directory it creates 0700, an older install's files tightened."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from openglm.store.db import open_database
from openglm.store.private import private_directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "openglm.db"
    database = await open_database(f"sqlite:///{path}")
    try:
        async with database.session() as session:
            await session.execute(text("INSERT INTO meta (key, value) VALUES ('probe', 'x')"))
        assert mode(path.parent) == 0o700
        assert {p.name: mode(p) for p in path.parent.iterdir()} == {
            "openglm.db": 0o600,
            "openglm.db-wal": 0o600,
            "openglm.db-shm": 0o600,
        }
    finally:
        await database.close()


async def test_an_older_database_is_tightened_and_an_existing_directory_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "openglm.db"
    database = await open_database(f"sqlite:///{path}")
    await database.close()
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    database = await open_database(f"sqlite:///{path}")
    await database.close()
    assert mode(path) == 0o600 and mode(tmp_path) == 0o755  # e.g. /tmp: not ours to change


def test_the_data_directory_is_made_and_kept_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    private_directory(data)
    assert mode(data) == 0o700
    data.chmod(0o755)
    private_directory(data)
    assert mode(data) == 0o700
