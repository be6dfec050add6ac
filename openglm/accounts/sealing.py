"""API-key secrets sealed at rest with the server's master key (AES-256-GCM).

Secrets cannot be stored as hashes because Zhipu JWTs are HMAC-signed with the secret itself. Sealing them
means a copy of the database alone does not leak usable keys, so the key never lives beside the database: every
replica needs the same master key, ``OPENGLM_SECRET_KEY``, or else a key file (``OPENGLM_SECRET_KEY_FILE``,
default ``~/.config/openglm/secret.key``) created on first run, owner-only, outside the data directory. A key
file that an older version made in the data directory is moved there on start, once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InternalError

KEY_FILE = "secret.key"  # the name older versions gave the key file in the data directory
_NONCE = 12

log = logging.getLogger(__name__)


class SealingError(InternalError):
    """A sealed secret cannot be opened, or the master key cannot be loaded safely."""


def load_master_key(configured: str | None, key_file: Path, data_dir: Path) -> bytes:
    """The configured secret (any string, stretched to 32 bytes), or the key file's key (made on first run)."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    if key_file.resolve().is_relative_to(data_dir.resolve()):
        raise SealingError(
            f"the master key file {key_file} is inside the data directory {data_dir}; a copy of the data "
            "directory would carry the key that opens its secrets. Set OPENGLM_SECRET_KEY_FILE to a path outside it"
        )
    _move_legacy_key_file(data_dir / KEY_FILE, key_file)
    if not key_file.exists():
        _install_key_file(key_file, base64.b64encode(secrets.token_bytes(32)).decode())
    return hashlib.sha256(_read_key_file(key_file).encode()).digest()


def _move_legacy_key_file(legacy: Path, key_file: Path) -> None:
    """An older version's key file in the data directory moves to ``key_file``: copied whole first, then removed.
    Processes starting together (the server and a CLI) agree; a crash between the two steps leaves two equal
    files, which the next start resolves the same way. Two different keys are refused, never picked from."""
    try:
        text = _read_key_file(legacy)
    except FileNotFoundError:  # none, or a process starting at the same time has just moved it
        return
    if not key_file.exists():
        _install_key_file(key_file, text)
    if _read_key_file(key_file) != text:
        raise SealingError(
            f"two master keys: {legacy} (in the data directory, made by an older version) and {key_file} differ. "
            f"To keep the data directory's key, set OPENGLM_SECRET_KEY_FILE to a new path outside {legacy.parent} "
            "(it is moved there on start); to keep the other, move the data directory's key away"
        )
    legacy.unlink(missing_ok=True)
    log.warning("moved the master key file out of the data directory: %s -> %s", legacy, key_file)


def _install_key_file(path: Path, text: str) -> None:
    """Written whole under a temporary name, then linked into place: a crash never leaves a partial key, and
    of two processes starting together one wins and the other reads the winner's key. The directory is made
    owner-only when this creates it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_key_file(path: Path) -> str:
    """The file's base64 text (the master key is derived from the text), refused unless it holds 32 bytes.
    A file others may read is made owner-only first."""
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; made it owner-only (0600)", path)
        path.chmod(0o600)
    text = path.read_text().strip()
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SealingError(f"{path} is not a master key file (32 bytes, base64); restore it or set OPENGLM_SECRET_KEY")
    return text


class SecretBox:
    def __init__(self, master_key: bytes):
        self._aead = AESGCM(master_key)
        self.fingerprint = hmac.new(master_key, b"openglm master key check", hashlib.sha256).hexdigest()[:32]

    def seal(self, secret: str, key_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        # The key id is bound as associated data, so a sealed secret cannot be moved to another key row.
        return nonce + self._aead.encrypt(nonce, secret.encode(), key_id.encode())

    def open(self, sealed: bytes, key_id: str) -> str:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], key_id.encode()).decode()
        except InvalidTag:
            raise SealingError(f"cannot open the secret of key {key_id}: wrong master key") from None
