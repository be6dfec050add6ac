"""The master key file: made whole or not at all, shared by processes that start together, refused if damaged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from openglm.accounts.sealing import KEY_FILE, SealingError, SecretBox, load_master_key
from openglm.errors import OpenGLMError


def test_key_file_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    first = load_master_key(None, tmp_path / "data")
    assert load_master_key(None, tmp_path / "data") == first
    assert (tmp_path / "data" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == [KEY_FILE]  # no temporary files left behind


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_master_key(None, tmp_path), range(16)))
    assert len(keys) == 1


@pytest.mark.parametrize("content", ["", "not base64 at all", "c2hvcnQ="])
def test_a_damaged_key_file_is_refused_not_used(tmp_path: Path, content: str) -> None:
    (tmp_path / KEY_FILE).write_text(content)
    with pytest.raises(SealingError, match="not a master key file") as info:
        load_master_key(None, tmp_path)
    assert isinstance(info.value, OpenGLMError)  # so the CLI and the server report it as an error, not a trace


def test_configured_secret_wins_over_the_file(tmp_path: Path) -> None:
    assert load_master_key("shared-by-replicas", tmp_path) == load_master_key("shared-by-replicas", tmp_path / "x")
    assert not (tmp_path / KEY_FILE).exists()


def test_a_secret_opens_only_under_its_key_id_and_master_key() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("s3cret", "key-a")
    assert box.open(sealed, "key-a") == "s3cret"
    with pytest.raises(SealingError):
        box.open(sealed, "key-b")
    with pytest.raises(SealingError):
        SecretBox(bytes([1]) * 32).open(sealed, "key-a")
