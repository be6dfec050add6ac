"""``Authorization`` header → Principal, against real keys in a real store (SQLite and PostgreSQL).

Tokens are built exactly as the zhipuai SDK builds them (``zhipuai/core/_jwt_token.py``); time comes from a fixed
clock, so expiry is crossed by choosing ``exp``, never by sleeping.
"""

from __future__ import annotations

import base64
import calendar
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from openglm.accounts.auth import Authenticator, Principal, bearer_token, expiry_seconds
from openglm.accounts.limits import KeyLimits
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import AccountStore
from openglm.errors import (
    AccountInactiveError,
    AuthenticationError,
    ExpiredTokenError,
    InvalidTokenError,
    MissingCredentialsError,
    OpenGLMError,
    TokenVerificationError,
)
from openglm.store.db import Database

MASTER_KEY = bytes(range(32))
NOW = float(calendar.timegm((2025, 3, 1, 12, 0, 0)))
NOW_MS = int(NOW * 1000)
LEEWAY = 30.0
DEFAULTS = KeyLimits(concurrency=5, rpm=60, daily_tokens=1_000_000)


@dataclass(frozen=True)
class Key:
    id: str
    secret: str
    account_id: str

    @property
    def text(self) -> str:
        return f"{self.id}.{self.secret}"


def zhipu_jwt(key_id: str, secret: str, *, now_ms: int = NOW_MS) -> str:
    """Byte for byte what ``zhipuai.core._jwt_token.generate_token`` sends."""
    payload = {"api_key": key_id, "exp": now_ms + 210000, "timestamp": now_ms}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"alg": "HS256", "sign_type": "SIGN"})


def signed(payload: dict[str, Any], secret: str, *, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"alg": algorithm, "sign_type": "SIGN"})


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature over another payload."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(payload)}.{signature}"


async def refused(auth: Authenticator, header: str | None, error: type[OpenGLMError], code: str) -> OpenGLMError:
    with pytest.raises(error) as caught:
        await auth.authenticate(header)
    assert caught.value.code == code
    return caught.value


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(MASTER_KEY))


@pytest.fixture
def auth(store: AccountStore) -> Authenticator:
    return Authenticator(store.key_for_auth, defaults=DEFAULTS, leeway=LEEWAY, clock=lambda: NOW)


async def new_key(store: AccountStore, account: str = "acme", **options: Any) -> Key:
    found = await store.ensure_account(account)
    record, text = await store.create_key(found.id, **options)
    key_id, _, secret = text.partition(".")
    assert key_id == record.id
    return Key(key_id, secret, found.id)


@pytest.fixture
async def key(store: AccountStore) -> Key:
    return await new_key(store)


# --- the header forms ------------------------------------------------------------


HEADER_FORMS = {
    "Bearer id.secret": lambda k: f"Bearer {k.text}",
    "raw id.secret": lambda k: k.text,
    "jwt without Bearer": lambda k: zhipu_jwt(k.id, k.secret),
    "Bearer jwt": lambda k: f"Bearer {zhipu_jwt(k.id, k.secret)}",
    "bearer lowercase id.secret": lambda k: f"bearer {k.text}",
    "bearer lowercase jwt": lambda k: f"bearer {zhipu_jwt(k.id, k.secret)}",
    "padded": lambda k: f"  Bearer   {k.text}  ",
}


@pytest.mark.parametrize("form", HEADER_FORMS.values(), ids=HEADER_FORMS.keys())
async def test_every_header_form_is_accepted(auth: Authenticator, key: Key, form: Any) -> None:
    principal = await auth.authenticate(form(key))
    assert principal.account_id == key.account_id
    assert principal.key_id == key.id
    assert principal.scope == "user"
    assert not principal.is_admin


# --- exp units and leeway -------------------------------------------------------------


EXP_UNITS = {
    "milliseconds": lambda seconds: int(seconds * 1000),
    "seconds": lambda seconds: int(seconds),
    "microseconds": lambda seconds: int(seconds * 1_000_000),
}


@pytest.mark.parametrize("unit", EXP_UNITS.values(), ids=EXP_UNITS.keys())
async def test_exp_in_any_unit_is_accepted_while_valid(auth: Authenticator, key: Key, unit: Any) -> None:
    token = signed({"api_key": key.id, "exp": unit(NOW + 60), "timestamp": NOW_MS}, key.secret)
    assert (await auth.authenticate(token)).key_id == key.id


@pytest.mark.parametrize("unit", EXP_UNITS.values(), ids=EXP_UNITS.keys())
async def test_exp_past_the_leeway_is_expired(auth: Authenticator, key: Key, unit: Any) -> None:
    token = signed({"api_key": key.id, "exp": unit(NOW - LEEWAY - 1), "timestamp": NOW_MS}, key.secret)
    err = await refused(auth, token, ExpiredTokenError, "1003")
    assert err.status == 401


@pytest.mark.parametrize("unit", EXP_UNITS.values(), ids=EXP_UNITS.keys())
async def test_exp_within_the_leeway_is_accepted(auth: Authenticator, key: Key, unit: Any) -> None:
    token = signed({"api_key": key.id, "exp": unit(NOW - LEEWAY + 1), "timestamp": NOW_MS}, key.secret)
    assert (await auth.authenticate(token)).key_id == key.id


async def test_sdk_token_minted_past_ttl_and_leeway_is_expired(auth: Authenticator, key: Key) -> None:
    token = zhipu_jwt(key.id, key.secret, now_ms=NOW_MS - 241_000)  # 210 s TTL + 30 s leeway < 241 s
    await refused(auth, f"Bearer {token}", ExpiredTokenError, "1003")


async def test_sdk_token_exactly_at_ttl_plus_leeway_is_accepted(auth: Authenticator, key: Key) -> None:
    token = zhipu_jwt(key.id, key.secret, now_ms=NOW_MS - 240_000)
    assert (await auth.authenticate(token)).key_id == key.id


async def test_sdk_token_from_a_slightly_fast_clock_is_accepted(auth: Authenticator, key: Key) -> None:
    token = zhipu_jwt(key.id, key.secret, now_ms=NOW_MS + 20_000)
    assert (await auth.authenticate(token)).key_id == key.id


async def test_node_sdk_token_with_microseconds_and_seconds_iat(auth: Authenticator, key: Key) -> None:
    now_us = NOW_MS * 1000
    payload = {"api_key": key.id, "exp": now_us + 210_000_000, "timestamp": now_us, "iat": int(NOW)}
    token = jwt.encode(payload, key.secret, algorithm="HS256", headers={"sign_type": "SIGN"})
    assert (await auth.authenticate(f"Bearer {token}")).key_id == key.id


# --- missing and malformed ------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   ", "bearer "])
async def test_missing_credentials(auth: Authenticator, header: str | None) -> None:
    err = await refused(auth, header, MissingCredentialsError, "1001")
    assert err.status == 401
    assert isinstance(err, AuthenticationError)


@pytest.mark.parametrize(
    "header",
    ["nodot", "a.b.c.d", "Bearer a.b.c.d", "abc.", ".abc", "Bearer .", "a.b.c", "a..c", "..", "Basic dXNlcjpwYXNz"],
)
async def test_malformed_token(auth: Authenticator, header: str) -> None:
    await refused(auth, header, InvalidTokenError, "1002")


async def test_four_part_key_text_is_malformed(auth: Authenticator, key: Key) -> None:
    await refused(auth, f"{key.text}.extra.parts", InvalidTokenError, "1002")


async def test_empty_secret_is_malformed(auth: Authenticator, key: Key) -> None:
    await refused(auth, f"Bearer {key.id}.", InvalidTokenError, "1002")


# --- unknown keys, wrong secrets, forged tokens ----------------------------------------------


async def test_unknown_key_id_raw(auth: Authenticator, key: Key) -> None:
    await refused(auth, f"{'0' * 32}.{key.secret}", InvalidTokenError, "1002")


async def test_unknown_key_id_jwt(auth: Authenticator, key: Key) -> None:
    await refused(auth, zhipu_jwt("0" * 32, key.secret), InvalidTokenError, "1002")


async def test_wrong_secret_raw(auth: Authenticator, key: Key) -> None:
    wrong_last = "X" if key.secret[-1] != "X" else "Y"  # always a different secret
    await refused(auth, f"Bearer {key.id}.{key.secret[:-1]}{wrong_last}", TokenVerificationError, "1004")


async def test_another_keys_secret_raw(auth: Authenticator, store: AccountStore, key: Key) -> None:
    other = await new_key(store)
    await refused(auth, f"{key.id}.{other.secret}", TokenVerificationError, "1004")


async def test_jwt_signed_with_a_wrong_secret(auth: Authenticator, key: Key) -> None:
    await refused(auth, zhipu_jwt(key.id, "not-the-secret-at-all-000"), TokenVerificationError, "1004")


async def test_tampered_exp_keeps_old_signature(auth: Authenticator, key: Key) -> None:
    token = zhipu_jwt(key.id, key.secret, now_ms=NOW_MS - 3_600_000)  # expired an hour ago
    forged = with_payload(token, {"api_key": key.id, "exp": NOW_MS + 3_600_000, "timestamp": NOW_MS})
    await refused(auth, forged, TokenVerificationError, "1004")


async def test_tampered_api_key_keeps_old_signature(auth: Authenticator, store: AccountStore, key: Key) -> None:
    victim = await new_key(store, "victim")
    token = zhipu_jwt(key.id, key.secret)
    forged = with_payload(token, {"api_key": victim.id, "exp": NOW_MS + 210000, "timestamp": NOW_MS})
    await refused(auth, forged, TokenVerificationError, "1004")


async def test_alg_none_is_refused(auth: Authenticator, key: Key) -> None:
    payload = {"api_key": key.id, "exp": NOW_MS + 210000, "timestamp": NOW_MS}
    token = jwt.encode(payload, None, algorithm="none")
    assert token.endswith(".")
    await refused(auth, token, InvalidTokenError, "1002")


async def test_alg_none_header_over_a_valid_hs256_signature_is_refused(auth: Authenticator, key: Key) -> None:
    _, body, signature = zhipu_jwt(key.id, key.secret).split(".")
    await refused(auth, f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{body}.{signature}", InvalidTokenError, "1002")


async def test_other_hmac_algorithm_is_refused(auth: Authenticator, key: Key) -> None:
    token = signed({"api_key": key.id, "exp": NOW_MS + 210000, "timestamp": NOW_MS}, key.secret, algorithm="HS512")
    await refused(auth, token, InvalidTokenError, "1002")


async def test_jwt_without_exp(auth: Authenticator, key: Key) -> None:
    await refused(auth, signed({"api_key": key.id, "timestamp": NOW_MS}, key.secret), InvalidTokenError, "1002")


@pytest.mark.parametrize("exp", ["1740830400000", None, True, [1]])
async def test_jwt_with_non_numeric_exp(auth: Authenticator, key: Key, exp: object) -> None:
    token = signed({"api_key": key.id, "exp": exp, "timestamp": NOW_MS}, key.secret)
    await refused(auth, token, InvalidTokenError, "1002")


async def test_jwt_without_api_key(auth: Authenticator, key: Key) -> None:
    token = signed({"exp": NOW_MS + 210000, "timestamp": NOW_MS}, key.secret)
    await refused(auth, token, InvalidTokenError, "1002")


@pytest.mark.parametrize("api_key", ["", 12345, None])
async def test_jwt_with_unusable_api_key(auth: Authenticator, key: Key, api_key: object) -> None:
    token = signed({"api_key": api_key, "exp": NOW_MS + 210000, "timestamp": NOW_MS}, key.secret)
    await refused(auth, token, InvalidTokenError, "1002")


# --- the key's and the account's state -------------------------------------------------------


async def test_disabled_key(auth: Authenticator, store: AccountStore, key: Key) -> None:
    await store.set_key_status(key.id, "disabled")
    await refused(auth, key.text, TokenVerificationError, "1004")
    await refused(auth, zhipu_jwt(key.id, key.secret), TokenVerificationError, "1004")


async def test_reenabled_key_works_again(auth: Authenticator, store: AccountStore, key: Key) -> None:
    await store.set_key_status(key.id, "disabled")
    await store.set_key_status(key.id, "active")
    assert (await auth.authenticate(key.text)).key_id == key.id


async def test_deleted_key(auth: Authenticator, store: AccountStore, key: Key) -> None:
    await store.delete_key(key.id)
    await refused(auth, key.text, InvalidTokenError, "1002")
    await refused(auth, zhipu_jwt(key.id, key.secret), InvalidTokenError, "1002")


async def test_key_past_its_expiry(auth: Authenticator, store: AccountStore) -> None:
    key = await new_key(store, expires_at=datetime.fromtimestamp(NOW - 1, UTC))
    await refused(auth, key.text, ExpiredTokenError, "1003")
    await refused(auth, zhipu_jwt(key.id, key.secret), ExpiredTokenError, "1003")


async def test_key_before_its_expiry(auth: Authenticator, store: AccountStore) -> None:
    key = await new_key(store, expires_at=datetime.fromtimestamp(NOW + 1, UTC))
    assert (await auth.authenticate(key.text)).key_id == key.id


async def test_disabled_account(auth: Authenticator, store: AccountStore, key: Key) -> None:
    await store.set_account_status(key.account_id, "disabled")
    err = await refused(auth, key.text, AccountInactiveError, "1110")
    assert err.status == 403
    await refused(auth, zhipu_jwt(key.id, key.secret), AccountInactiveError, "1110")


async def test_admin_scope(auth: Authenticator, store: AccountStore) -> None:
    admin = await new_key(store, scope="admin")
    principal = await auth.authenticate(f"Bearer {admin.text}")
    assert principal.scope == "admin"
    assert principal.is_admin


async def test_user_id_is_reported(auth: Authenticator, store: AccountStore) -> None:
    account = await store.ensure_account("acme")
    user = await store.create_user(account.id, "ada")
    key = await new_key(store, user_id=user.id)
    assert (await auth.authenticate(key.text)).user_id == user.id


def test_principal_without_key_is_not_admin() -> None:
    principal = Principal(account_id="local", key_id=None)
    assert not principal.is_admin
    assert principal.limits == KeyLimits()


# --- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "defaults", "merged"),
    [
        (KeyLimits(), DEFAULTS, DEFAULTS),
        (KeyLimits(2, 10, 500), DEFAULTS, KeyLimits(2, 10, 500)),
        (KeyLimits(concurrency=2), DEFAULTS, KeyLimits(2, 60, 1_000_000)),
        (KeyLimits(0, 0, 0), DEFAULTS, KeyLimits()),
        (KeyLimits(rpm=0), DEFAULTS, KeyLimits(5, None, 1_000_000)),
        (KeyLimits(), KeyLimits(0, 0, 0), KeyLimits()),
        (KeyLimits(daily_tokens=7), KeyLimits(0, None, 0), KeyLimits(None, None, 7)),
        (KeyLimits(), KeyLimits(), KeyLimits()),
    ],
)
async def test_limits_own_win_unset_take_defaults_zero_is_unlimited(
    store: AccountStore, own: KeyLimits, defaults: KeyLimits, merged: KeyLimits
) -> None:
    auth = Authenticator(store.key_for_auth, defaults=defaults, clock=lambda: NOW)
    key = await new_key(store, limits=own)
    assert (await auth.authenticate(key.text)).limits == merged


# --- expiry_seconds and bearer_token ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("exp", "seconds"),
    [
        (1_740_830_400, 1_740_830_400),
        (1_740_830_400.5, 1_740_830_400.5),
        (1_740_830_400_000, 1_740_830_400),
        (1_740_830_400_000_000, 1_740_830_400),
        (0, 0),
    ],
)
def test_expiry_seconds_reads_any_unit(exp: float, seconds: float) -> None:
    assert expiry_seconds(exp) == pytest.approx(seconds)


@pytest.mark.parametrize("exp", [True, False, "1740830400", None, [1], {"v": 1}])
def test_expiry_seconds_refuses_non_numbers(exp: object) -> None:
    with pytest.raises(InvalidTokenError):
        expiry_seconds(exp)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc.def", "abc.def"),
        ("BEARER abc.def", "abc.def"),
        ("abc.def", "abc.def"),
        ("  abc.def  ", "abc.def"),
        ("Bearer    abc.def ", "abc.def"),
        ("x.y.z", "x.y.z"),
    ],
)
def test_bearer_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "  ", "Bearer", "bearer   "])
def test_bearer_token_missing(header: str | None) -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        bearer_token(header)
    assert caught.value.code == "1001"


# --- keys made from keys ------------------------------------------------------------------


async def test_a_key_made_from_a_key_carries_its_lineage_with_the_defaults_filled_in(
    auth: Authenticator, store: AccountStore
) -> None:
    parent = await new_key(store, limits=KeyLimits(rpm=10))
    child = await new_key(store, parent_id=parent.id)
    principal = await auth.authenticate(child.text)
    assert principal.limits == DEFAULTS
    assert [(a.key_id, a.limits) for a in principal.lineage] == [(parent.id, KeyLimits(5, 10, 1_000_000))]
    assert (await auth.authenticate(parent.text)).lineage == ()


@pytest.mark.parametrize("revoked", ["disabled", "deleted", "expired"])
async def test_revoking_any_key_up_the_chain_stops_the_keys_made_from_it(
    auth: Authenticator, store: AccountStore, revoked: str
) -> None:
    root = await new_key(store, expires_at=datetime(2025, 3, 1, 11, tzinfo=UTC) if revoked == "expired" else None)
    child = await new_key(store, parent_id=root.id)
    grandchild = await new_key(store, parent_id=child.id)
    if revoked == "disabled":
        await store.set_key_status(root.id, "disabled")
    elif revoked == "deleted":
        await store.delete_key(root.id)
    error = await refused(
        auth,
        grandchild.text,
        ExpiredTokenError if revoked == "expired" else TokenVerificationError,
        "1003" if revoked == "expired" else "1004",
    )
    assert root.id in error.message
