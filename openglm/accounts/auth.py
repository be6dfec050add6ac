"""``Authorization`` header → Principal, in the four forms Zhipu's and OpenAI's SDKs send.

1. ``<jwt>``            zhipuai 2.0.x
2. ``<id.secret>``      zhipuai 2.0.1.2024042x (token cache disabled)
3. ``Bearer <id.secret>`` / ``Bearer <jwt>``   zhipuai ≥ 2.1 and the openai SDK

A Zhipu JWT is HS256-signed with the key's secret; its payload carries ``api_key`` (the key id), ``exp`` and
``timestamp`` in milliseconds. Clients in the wild also send ``exp`` in seconds (third-party code) or in
microseconds (the Node SDK), so expiry is read in whichever unit makes it a plausible date, with leeway for skew.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jwt

from ..errors import (
    AccountInactiveError,
    AuthenticationError,
    ExpiredTokenError,
    InvalidTokenError,
    MissingCredentialsError,
    TokenVerificationError,
)
from .limits import Ancestor, KeyLimits
from .store import AncestorRecord, KeyRecord, strictest_safety

Channel = Literal["sync", "async", "batch"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account, and the key it used (None when authentication is off)."""

    account_id: str
    key_id: str | None
    scope: str = "user"
    user_id: str | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
    # The keys this key was made from, root first, with their limits: admission checks each of them too.
    lineage: tuple[Ancestor, ...] = ()
    # How the call came: "sync" (a request), or work done later for this key — "async" (an async result) or
    # "batch" (a batch line). Work done later was admitted through the key's limits when it was submitted, so its
    # calls are held to the balance but take no slot or request of the limits again; a batch line pays the batch
    # price (``Prices.batch``) and is served at low priority.
    channel: Channel = "sync"
    # Content safety for the key's calls (``openglm.safety``): on | optional | off, the strictest up its chain.
    safety: str = "on"

    @property
    def deferred(self) -> bool:
        return self.channel != "sync"

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


# Only the signature is checked by PyJWT: expiry is read leniently below, and claims Zhipu tokens do not use
# (aud, nbf, iat, possibly in milliseconds) must not turn a well-signed token into a "bad signature".
_SIGNATURE_ONLY = {"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False}

KeyLoader = Callable[[str], Any]  # async (key_id) -> KeyRecord | None


def bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise MissingCredentialsError("Authorization header is missing / 请求头中未收到 Authorization 参数")
    token = header.strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() == "bearer":
        token = rest.strip()
    if not token:
        raise MissingCredentialsError("Authorization header carries no token")
    return token


def expiry_seconds(exp: Any) -> float:
    """``exp`` as Unix seconds, whether it was written in seconds, milliseconds or microseconds."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidTokenError("JWT exp must be a number")
    value = float(exp)
    if value > 1e14:  # microseconds (the Node SDK)
        return value / 1e6
    if value > 1e11:  # milliseconds (the Python and Java SDKs)
        return value / 1e3
    return value


class Authenticator:
    def __init__(
        self, load_key: KeyLoader, *, defaults: KeyLimits, leeway: float = 30.0, clock: Callable[[], float] = time.time
    ):
        self._load_key = load_key
        self._defaults = defaults
        self._leeway = leeway
        self._clock = clock

    async def authenticate(self, header: str | None) -> Principal:
        token = bearer_token(header)
        parts = token.split(".")
        if len(parts) == 3:
            record = await self._from_jwt(token)
        elif len(parts) == 2 and all(parts):
            record = await self._from_key(parts[0], parts[1])
        else:
            raise InvalidTokenError(
                "Authorization token is malformed / Authorization Token 非法：expected id.secret or a JWT"
            )
        return self._principal(record)

    async def _record(self, key_id: str) -> KeyRecord:
        record: KeyRecord | None = await self._load_key(key_id)
        if record is None:
            raise InvalidTokenError("API key does not exist / API key 不存在")
        return record

    async def _from_key(self, key_id: str, secret: str) -> KeyRecord:
        record = await self._record(key_id)
        if not hmac.compare_digest(record.secret.encode(), secret.encode()):
            raise TokenVerificationError("API key secret is wrong / Authorization Token 验证失败")
        return record

    async def _from_jwt(self, token: str) -> KeyRecord:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidTokenError("Authorization token is not a readable JWT / Authorization Token 非法") from None
        if header.get("alg") != "HS256":
            raise InvalidTokenError("JWT must be signed with HS256")
        key_id = claims.get("api_key")
        if not isinstance(key_id, str) or not key_id:
            raise InvalidTokenError("JWT payload has no api_key")
        record = await self._record(key_id)
        try:
            # exp is checked below, leniently; PyJWT would read milliseconds as a date far in the future.
            jwt.decode(token, record.secret, algorithms=["HS256"], options=_SIGNATURE_ONLY)
        except jwt.PyJWTError:
            raise TokenVerificationError("JWT signature is invalid / Authorization Token 验证失败") from None
        if "exp" not in claims:
            raise InvalidTokenError("JWT payload has no exp")
        if expiry_seconds(claims["exp"]) + self._leeway < self._clock():
            raise ExpiredTokenError("Authorization Token 已过期，请重新生成/获取。 (JWT expired)")
        return record

    async def deferred(self, account_id: str, key_id: str | None, channel: Channel, user_id: str | None) -> Principal:
        """The principal work queued with a key runs as when it runs (an async call, a batch): the key checked
        again — disabled, deleted or expired since (or up its chain), or its account disabled, and the work is
        refused — with its limits and lineage, so its tokens count against every key of the family. Without a
        key (authentication off): the account alone."""
        if key_id is None:
            return Principal(account_id, None, user_id=user_id, channel=channel)
        principal = self._principal(await self._record(key_id))
        if principal.account_id != account_id:
            raise TokenVerificationError("API key does not belong to this account any more")
        return replace(principal, channel=channel, user_id=user_id or principal.user_id)

    def _principal(self, record: KeyRecord) -> Principal:
        if record.status != "active":
            raise TokenVerificationError(f"API key is {record.status} / API key 已停用")
        if record.expires_at is not None and record.expires_at.timestamp() < self._clock():
            raise ExpiredTokenError("API key has expired / API key 已过期")
        if record.account_status != "active":
            raise AccountInactiveError("account is disabled / 账户已停用")
        for ancestor in record.lineage:
            self._check_ancestor(ancestor)
        return Principal(
            account_id=record.account_id,
            key_id=record.id,
            scope=record.scope,
            user_id=record.user_id,
            limits=_with_defaults(record.limits, self._defaults),
            lineage=tuple(Ancestor(a.id, _with_defaults(a.limits, self._defaults)) for a in record.lineage),
            safety=strictest_safety([record.safety, *(a.safety for a in record.lineage)]),
        )

    def _check_ancestor(self, ancestor: AncestorRecord) -> None:
        """A key made with another key lives by it: disabling, deleting or the expiry of any key up its chain
        stops it too (otherwise a leaked key could mint a successor that survives its revocation)."""
        if ancestor.status != "active":
            raise TokenVerificationError(
                f"API key {ancestor.id}, which this key was made from, is {ancestor.status} / 此密钥的上级密钥已停用"
            )
        if ancestor.expires_at is not None and ancestor.expires_at.timestamp() < self._clock():
            raise ExpiredTokenError(
                f"API key {ancestor.id}, which this key was made from, has expired / 上级密钥已过期"
            )


def _with_defaults(own: KeyLimits, defaults: KeyLimits) -> KeyLimits:
    """A key's own limit wins; unset ones take the server default; 0 anywhere means unlimited."""
    merged = KeyLimits(
        concurrency=own.concurrency if own.concurrency is not None else defaults.concurrency,
        rpm=own.rpm if own.rpm is not None else defaults.rpm,
        daily_tokens=own.daily_tokens if own.daily_tokens is not None else defaults.daily_tokens,
    )
    return replace(
        merged,
        concurrency=merged.concurrency or None,
        rpm=merged.rpm or None,
        daily_tokens=merged.daily_tokens or None,
    )


__all__ = ["AuthenticationError", "Authenticator", "Principal", "bearer_token", "expiry_seconds"]
