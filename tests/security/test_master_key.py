"""Item 1 (the master key's part): the key that opens every sealed API-key secret does not live in the data
directory (whose database, blobs and sandbox workspaces a confused deputy or a copy of the directory exposes);
an install whose older version put it there is moved out on start and still opens its keys."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from zhipuai import ZhipuAI

from tests.integration.conftest import write_catalog

from .conftest import RunningServer, new_key

CATALOG = """
[[models]]
id = "script-key"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "sealed and opened"
"""


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "openglm", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def key_files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file() and "secret" in path.name]


def test_a_new_install_keeps_its_master_key_out_of_the_data_directory(tmp_path: Path) -> None:
    key_file = tmp_path / "config" / "openglm" / "secret.key"
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SECRET_KEY_FILE": str(key_file), "OPENGLM_SANDBOX_WARM": "0"}
    server = RunningServer(
        models_file=write_catalog(tmp_path / "models.toml", CATALOG), log=tmp_path / "s.log", env=env
    )
    try:
        key = new_key(server, "alice")
        response = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
    finally:
        server.stop()
    data = Path(server.env["OPENGLM_DATA_DIR"])
    assert key_files_under(data) == []
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700


def test_an_older_install_is_moved_out_once_and_still_opens_its_sealed_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    legacy = data / "secret.key"
    text = base64.b64encode(os.urandom(32)).decode()
    legacy.write_text(text)
    # The keys were sealed under that file's key (OPENGLM_SECRET_KEY derives the same key from the same text), as
    # an older version did with the file where it was.
    env = {**os.environ, "OPENGLM_DATA_DIR": str(data), "OPENGLM_SECRET_KEY": text}
    cli(env, "accounts", "create", "bob", "--grant", "5")
    key = cli(env, "keys", "create", "--account", "bob").strip()
    admin = cli(env, "keys", "create", "--admin").strip()
    key_file = tmp_path / "config" / "openglm" / "secret.key"
    server_env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_DATA_DIR": str(data),
        "OPENGLM_SECRET_KEY_FILE": str(key_file),
        "OPENGLM_SANDBOX_WARM": "0",
    }
    server = RunningServer(
        models_file=write_catalog(tmp_path / "models.toml", CATALOG), log=tmp_path / "s.log", env=server_env
    )
    try:
        assert not legacy.exists() and key_files_under(data) == []
        assert key_file.read_text() == text
        assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
        # The user's key signs a Zhipu JWT (HMAC with its secret): the server opened the sealed secret.
        zhipu = ZhipuAI(api_key=key, base_url=f"{server.url}/api/paas/v4", max_retries=0)
        reply = zhipu.chat.completions.create(model="script-key", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "sealed and opened"
        admin_call = httpx.get(f"{server.url}/admin/accounts", headers={"Authorization": f"Bearer {admin}"})
        assert admin_call.status_code == 200
        # The CLI, started after the move, finds the key where the server put it (and nothing left to move).
        assert "bob" in server.cli("accounts", "list")
    finally:
        server.stop()
    assert not legacy.exists()


@pytest.mark.parametrize("inside", ["secret.key", "keys/secret.key"])
def test_a_key_file_configured_inside_the_data_directory_is_refused_at_start(tmp_path: Path, inside: str) -> None:
    data = tmp_path / "data"
    env = {"OPENGLM_DATA_DIR": str(data), "OPENGLM_SECRET_KEY_FILE": str(data / inside)}
    server = RunningServer(log=tmp_path / "s.log", env=env, wait=False)
    assert server.process.wait(timeout=60) != 0
    server.stop()
    assert "inside the data directory" in server.log_path.read_text()
    assert not (data / inside).exists()
