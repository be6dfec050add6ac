"""API-key secrets sealed at rest with the server's master key (AES-256-GCM).

Secrets cannot be stored as hashes because Zhipu JWTs are HMAC-signed with the secret itself. Sealing them
means a copy of the database alone does not leak usable keys. Every replica needs the same master key:
``OPENGLM_SECRET_KEY``, or else a key file created in the data directory on first run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InternalError

KEY_FILE = "secret.key"
_NONCE = 12


class SealingError(InternalError):
    """A sealed secret cannot be opened: the master key differs from the one that sealed it."""


def load_master_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret (any string, stretched to 32 bytes) or the data directory's key file."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    path = data_dir / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return hashlib.sha256(_read_key_file(path).encode()).digest()


def _create_key_file(path: Path) -> None:
    """Written whole under a temporary name, then linked into place: a crash never leaves a partial key, and
    of two processes starting together one wins and the other reads the winner's key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_key_file(path: Path) -> str:
    """The file's base64 text (the master key is derived from the text), refused unless it holds 32 bytes."""
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
