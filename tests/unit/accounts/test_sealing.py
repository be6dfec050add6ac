"""The master key file: made whole or not at all, outside the data directory, owner-only, shared by processes
that start together, refused if damaged; an older version's key file in the data directory is moved out once."""

from __future__ import annotations

import base64
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from openglm.accounts.sealing import KEY_FILE, SealingError, SecretBox, load_master_key
from openglm.config import Settings, default_config_dir
from openglm.errors import OpenGLMError


def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "config" / "openglm" / "secret.key", tmp_path / "data"


def test_key_file_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    first = load_master_key(None, key_file, data)
    assert load_master_key(None, key_file, data) == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]  # no temporary files left behind
    assert not (data / KEY_FILE).exists()


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_master_key(None, key_file, data), range(16)))
    assert len(keys) == 1


@pytest.mark.parametrize("content", ["", "not base64 at all", "c2hvcnQ="])
def test_a_damaged_key_file_is_refused_not_used(tmp_path: Path, content: str) -> None:
    key_file, data = paths(tmp_path)
    key_file.parent.mkdir(parents=True)
    key_file.write_text(content)
    with pytest.raises(SealingError, match="not a master key file") as info:
        load_master_key(None, key_file, data)
    assert isinstance(info.value, OpenGLMError)  # so the CLI and the server report it as an error, not a trace


def test_configured_secret_wins_over_the_file(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    assert load_master_key("shared-by-replicas", key_file, data) == load_master_key(
        "shared-by-replicas", key_file, data
    )
    assert not key_file.exists()


def legacy_key(data: Path) -> str:
    data.mkdir(parents=True)
    text = base64.b64encode(os.urandom(32)).decode()
    (data / KEY_FILE).write_text(text)
    (data / KEY_FILE).chmod(0o644)
    return text


def test_an_older_key_file_in_the_data_directory_is_moved_out_once(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    text = legacy_key(data)
    with ThreadPoolExecutor(4) as pool:  # the server and a CLI starting together
        keys = set(pool.map(lambda _: load_master_key(None, key_file, data), range(8)))
    assert len(keys) == 1 and keys == {load_master_key(None, key_file, data)}
    assert not (data / KEY_FILE).exists()
    assert key_file.read_text() == text and key_file.stat().st_mode & 0o777 == 0o600


def test_starts_racing_the_move_never_fail(tmp_path: Path) -> None:
    """Eight starts released together by a barrier, many rounds: a start that sees the old file and then finds
    it gone (another start moved it between the two steps) takes the moved key instead of failing."""
    for round in range(MOVE_ROUNDS):
        key_file, data = tmp_path / f"c{round}" / "secret.key", tmp_path / f"d{round}"
        text = legacy_key(data)
        barrier = threading.Barrier(MOVE_STARTS)
        with ThreadPoolExecutor(MOVE_STARTS) as pool:  # an exception in any start fails the test here
            starts = [pool.submit(start_after, barrier, key_file, data) for _ in range(MOVE_STARTS)]
            keys = {start.result() for start in starts}
        assert len(keys) == 1 and key_file.read_text() == text and not (data / KEY_FILE).exists()


def start_after(barrier: threading.Barrier, key_file: Path, data: Path) -> bytes:
    barrier.wait()
    return load_master_key(None, key_file, data)


MOVE_ROUNDS, MOVE_STARTS = 150, 8


def test_a_crash_after_the_copy_is_finished_on_the_next_start(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    text = legacy_key(data)
    key_file.parent.mkdir(parents=True)
    key_file.write_text(text)  # copied, not yet removed
    load_master_key(None, key_file, data)
    assert not (data / KEY_FILE).exists() and key_file.read_text() == text


def test_two_different_keys_are_refused_not_picked_from(tmp_path: Path) -> None:
    key_file, data = paths(tmp_path)
    text = legacy_key(data)
    load_master_key(None, key_file, tmp_path / "elsewhere")  # another install's key, already in place
    with pytest.raises(SealingError, match="two master keys"):
        load_master_key(None, key_file, data)
    assert (data / KEY_FILE).read_text() == text  # nothing is lost


def test_a_key_file_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SealingError, match="inside the data directory"):
        load_master_key(None, tmp_path / "data" / "keys" / "secret.key", tmp_path / "data")


def test_the_default_key_file_is_in_the_user_config_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_config_dir() == tmp_path / "cfg" / "openglm"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_config_dir() == Path.home() / ".config" / "openglm"
    assert Settings.model_fields["secret_key_file"].default.name == "secret.key"


def test_a_secret_opens_only_under_its_key_id_and_master_key() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("s3cret", "key-a")
    assert box.open(sealed, "key-a") == "s3cret"
    with pytest.raises(SealingError):
        box.open(sealed, "key-b")
    with pytest.raises(SealingError):
        SecretBox(bytes([1]) * 32).open(sealed, "key-a")
