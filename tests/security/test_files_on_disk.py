"""Item 14 (disk): what the server keeps on disk is its own user's alone — the data directory 0700, the SQLite
database and its -wal/-shm 0600, blobs 0600 — on a new install and after an older install's 0755/0644 start."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import httpx

from tests.integration.conftest import write_catalog

from .conftest import RunningServer, new_key

CATALOG = """
[[models]]
id = "script-disk"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "ok"
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def use(server: RunningServer) -> None:
    """Something in the database (WAL writes) and a blob."""
    key = {"Authorization": f"Bearer {new_key(server, 'disk')}"}
    upload = httpx.post(
        f"{server.url}/v1/files", data={"purpose": "assistant"}, files={"file": ("a.txt", b"secret")}, headers=key
    )
    assert upload.status_code == 200, upload.text


def assert_private(data: Path) -> None:
    assert mode(data) == 0o700
    database = data / "openglm.db"
    companions = [database.with_name(database.name + s) for s in ("", "-wal", "-shm")]
    assert all(p.exists() for p in companions[:2])
    for path in companions:
        if path.exists():
            assert mode(path) == 0o600, path
    blobs = data / "blobs"
    assert mode(blobs) == 0o700 and [mode(p) for p in blobs.iterdir()] == [0o600]
    # No file the server keeps is readable by others (and none can be reached: the directory is 0700).
    kept = [p for p in data.rglob("*") if p.is_file() and not p.is_symlink() and "sandboxes" not in p.parts]
    assert kept and [p for p in kept if mode(p) & 0o077] == []


def test_a_new_install_is_private(tmp_path: Path) -> None:
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0"}
    server = RunningServer(models_file=write_catalog(tmp_path / "m.toml", CATALOG), log=tmp_path / "s.log", env=env)
    try:
        use(server)
        assert_private(Path(server.env["OPENGLM_DATA_DIR"]))
    finally:
        server.stop()


def test_an_older_install_is_made_private_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with sqlite3.connect(data / "openglm.db") as connection:  # as an older version left it: 0644 under umask 022
        connection.execute("PRAGMA journal_mode=WAL")
    (data / "openglm.db").chmod(0o644)
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0", "OPENGLM_DATA_DIR": str(data)}
    server = RunningServer(models_file=write_catalog(tmp_path / "m.toml", CATALOG), log=tmp_path / "s.log", env=env)
    try:
        use(server)
        assert_private(data)
    finally:
        server.stop()
