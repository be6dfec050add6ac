"""Passwords for web sign-in: scrypt with a random salt per password, compared in constant time.

A hash is one string, ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (base64), so its parameters travel with it and can
be raised later without invalidating old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from ..errors import InvalidFieldError

N, R, P = 2**14, 8, 1  # ~16 MiB and some tens of milliseconds per hash
SALT_BYTES = 16
DIGEST_BYTES = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024  # a longer "password" would only make every attempt cost more
# Compared against when the email is unknown or has no password, so that every failed sign-in costs the same.
_DUMMY = f"scrypt${N}${R}${P}$" + base64.b64encode(bytes(SALT_BYTES)).decode() + "$"


def check_password(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidFieldError(f"password: {MIN_LENGTH} to {MAX_LENGTH} characters")


def _digest(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=DIGEST_BYTES)


def hash_password(password: str) -> str:
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _digest(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``. With no stored hash (no such user) the same work is done and the
    answer is False, so the time taken does not tell whether an email has a password."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = base64.b64decode(digest)
        computed = _digest(password[:MAX_LENGTH], base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, expected) and stored is not None
