"""Password hashing for web sign-in."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from openglm.accounts import passwords
from openglm.accounts.passwords import MAX_LENGTH, MIN_LENGTH, hash_password, verify_password
from openglm.errors import InvalidFieldError


def test_a_hash_is_salted_scrypt_and_verifies_only_its_password() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a random salt each time
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", passwords.N, passwords.R, passwords.P)
    assert len(base64.b64decode(salt)) == passwords.SALT_BYTES and len(base64.b64decode(digest)) == 32
    assert "correct horse" not in first
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsf", first)
    assert not verify_password("", first)


@pytest.mark.parametrize(
    "stored", [None, "", "md5$abc", "scrypt$1$2$3", "scrypt$x$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$!!"]
)
def test_no_hash_or_a_broken_one_never_verifies(stored: str | None) -> None:
    assert not verify_password("anything at all", stored)


def test_an_unknown_user_costs_the_same_scrypt_as_a_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kwargs: Any) -> bytes:
        calls.append(kwargs)
        return real(password, **kwargs)

    stored = hash_password("a password")
    monkeypatch.setattr(passwords.hashlib, "scrypt", counting)
    verify_password("a guess", stored)
    verify_password("a guess", None)
    assert len(calls) == 2
    known, unknown = ({k: v for k, v in c.items() if k != "salt"} for c in calls)
    assert known == unknown  # same n, r, p and length: the same work


@pytest.mark.parametrize("password", ["", "x" * (MIN_LENGTH - 1), "x" * (MAX_LENGTH + 1)])
def test_passwords_out_of_bounds_are_refused(password: str) -> None:
    with pytest.raises(InvalidFieldError):
        hash_password(password)
