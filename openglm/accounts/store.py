"""Accounts, users and API keys in the store; the only code that reads or writes those tables."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import AccountNotFoundError, InvalidFieldError, NotFoundError
from ..store.db import Database
from ..store.models import Account, ApiKey, Meta, UsageRecord, User
from . import ledger
from .limits import KeyLimits
from .money import format_yuan
from .sealing import SealingError, SecretBox

LOCAL_ACCOUNT = "local"
# 100 million CNY: far above any real entry, and far enough below the 64-bit limit that balances can never
# overflow a SUM (SQLite's SUM over integers raises on overflow; amounts are nano-yuan).
MAX_ENTRY = 10**8 * 10**9
_SECRET_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 24  # ~143 bits
# Keys made from keys, counted from the first: each admission checks every one, so the chain is bounded.
MAX_KEY_GENERATIONS = 8


def check_entry(kind: str, amount: int) -> None:
    """The rules for every entry an operator makes (charges come only from metering)."""
    if kind not in ("topup", "grant", "refund", "adjustment"):
        raise InvalidFieldError("kind must be one of topup, grant, refund, adjustment")
    if abs(amount) > MAX_ENTRY:
        raise InvalidFieldError(f"amount: at most {format_yuan(MAX_ENTRY)} CNY per ledger entry")
    if amount == 0 or (amount < 0 and kind != "adjustment"):
        raise InvalidFieldError(f"a {kind} needs a positive amount" if kind != "adjustment" else "amount is 0")


def check_limits(limits: KeyLimits) -> None:
    for name in ("concurrency", "rpm", "daily_tokens"):
        value = getattr(limits, name)
        if value is not None and value < 0:
            raise InvalidFieldError(f"{name} must be 0 (unlimited) or more, not {value}")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class AncestorRecord:
    """A key up the chain another key was made from: what authentication checks of it."""

    id: str
    status: str
    expires_at: datetime | None
    limits: KeyLimits
    safety: str = "on"


@dataclass(frozen=True)
class KeyRecord:
    """What authentication needs to know about a key, secret opened."""

    id: str
    account_id: str
    account_status: str
    user_id: str | None
    scope: str
    status: str
    secret: str = field(repr=False)  # never in a log line or a traceback's locals
    expires_at: datetime | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
    lineage: tuple[AncestorRecord, ...] = ()  # the keys it was made from, root first
    safety: str = "on"  # content safety for its calls: on | optional | off


@dataclass(frozen=True)
class AccountView:
    account: Account
    balance: int


@dataclass(frozen=True)
class KeyView:
    key: ApiKey
    account_name: str
    last_used_at: datetime | None


class AccountStore:
    def __init__(self, db: Database, box: SecretBox, *, free_grant: int = 0):
        self.db = db
        self.box = box
        self.free_grant = free_grant

    async def check_master_key(self) -> None:
        """Refuse to start with a master key other than the one this database's secrets were sealed with."""
        async with self.db.session() as session:
            stored = await session.get(Meta, "secret_fingerprint")
            if stored is None:
                session.add(Meta(key="secret_fingerprint", value=self.box.fingerprint))
            elif stored.value != self.box.fingerprint:
                raise SealingError(
                    "OPENGLM_SECRET_KEY (or the data directory's secret.key) is not the master key this database "
                    "was created with; every replica must use the same one"
                )

    # accounts

    async def create_account(self, name: str, *, grant: int | None = None) -> Account:
        name = name.strip()
        if not name:
            raise InvalidFieldError("account name must not be empty")
        grant = self.free_grant if grant is None else grant
        if grant:
            check_entry("grant", grant)
        try:
            async with self.db.session() as session:
                account = Account(id=new_id("acct"), name=name)
                session.add(account)
                await session.flush()
                if grant:
                    await ledger.append(session, account.id, "grant", grant, note="free grant for a new account")
        except IntegrityError:
            raise InvalidFieldError(f"an account named {name!r} already exists") from None
        return account

    async def ensure_account(self, name: str, *, grant: int | None = 0) -> Account:
        """The account called ``name``, created (with ``grant``; None: the free grant) if there is none."""
        async with self.db.read() as session:
            found = await session.scalar(select(Account).where(Account.name == name))
        if found is not None:
            return found
        try:
            return await self.create_account(name, grant=grant)
        except InvalidFieldError:  # created by someone else meanwhile
            return await self.account(name)

    async def account(self, ref: str) -> Account:
        async with self.db.read() as session:
            return await _account(session, ref)

    async def accounts(self) -> list[AccountView]:
        async with self.db.read() as session:
            rows = await session.scalars(select(Account).order_by(Account.created_at, Account.id))
            return [AccountView(a, await ledger.balance(session, a.id)) for a in rows]

    async def account_view(self, ref: str) -> AccountView:
        async with self.db.read() as session:
            account = await _account(session, ref)
            return AccountView(account, await ledger.balance(session, account.id))

    async def add_entry(self, ref: str, kind: str, amount: int, note: str = "") -> ledger.Entry:
        """Top-ups, grants, refunds (positive) and adjustments (either sign); charges only come from metering."""
        check_entry(kind, amount)
        async with self.db.session() as session:
            account = await _account(session, ref)
            return await ledger.append(session, account.id, kind, amount, note=note)

    async def ledger(self, ref: str, *, limit: int = 100, before: int | None = None) -> list[ledger.Entry]:
        async with self.db.read() as session:
            account = await _account(session, ref)
            return await ledger.entries(session, account.id, limit=limit, before=before)

    async def set_account_status(self, ref: str, status: str) -> Account:
        if status not in ("active", "disabled"):
            raise InvalidFieldError("account status must be 'active' or 'disabled'")
        async with self.db.session() as session:
            account = await _account(session, ref)
            account.status = status
        return account

    async def create_user(
        self, account_ref: str, name: str, email: str | None = None, *, password_hash: str | None = None
    ) -> User:
        """``password_hash`` (accounts/passwords.py) lets the user sign in to the web app with ``email``."""
        async with self.db.session() as session:
            account = await _account(session, account_ref)
            if password_hash is not None:
                await _sign_in_email_free(session, email, None)
            email = email.strip() if email is not None else None
            user = User(id=new_id("user"), account_id=account.id, name=name, email=email, password_hash=password_hash)
            session.add(user)
        return user

    async def user(self, user_id: str) -> User:
        async with self.db.read() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id!r} does not exist")
        return user

    async def set_password(self, account_ref: str, user_ref: str, password_hash: str | None) -> User:
        """Set (or with None, remove) the sign-in password of a user of the account, named by id or by email.
        A user named by an email the account does not have yet is created, called by the email's first part, but
        only to set a password: removing the password of a user who does not exist is a 404, not a new user."""
        user_ref = user_ref.strip()
        async with self.db.session() as session:
            account = await _account(session, account_ref)
            user = await session.get(User, user_ref)
            if user is None or user.account_id != account.id:
                user = await session.scalar(
                    select(User)
                    .where(User.account_id == account.id, func.lower(User.email) == user_ref.strip().lower())
                    .order_by(User.created_at, User.id)
                    .limit(1)
                )
            if user is None:
                if "@" not in user_ref or password_hash is None:
                    raise NotFoundError(f"no user {user_ref!r} in account {account.name!r}")
                user = User(id=new_id("user"), account_id=account.id, name=user_ref.split("@")[0], email=user_ref)
                session.add(user)
            if password_hash is not None:
                await _sign_in_email_free(session, user.email, user.id)
            user.password_hash = password_hash
        return user

    async def user_for_sign_in(self, email: str) -> User | None:
        """The user who signs in with ``email`` (case does not matter), if one has a password."""
        async with self.db.read() as session:
            user: User | None = await session.scalar(
                select(User)
                .where(func.lower(User.email) == email.strip().lower(), User.password_hash.is_not(None))
                .order_by(User.created_at, User.id)
                .limit(1)
            )
            return user

    async def users(self, account_ref: str) -> list[User]:
        async with self.db.read() as session:
            account = await _account(session, account_ref)
            return list(await session.scalars(select(User).where(User.account_id == account.id).order_by(User.name)))

    # keys

    async def create_key(
        self,
        account_ref: str,
        *,
        name: str = "",
        scope: str = "user",
        user_id: str | None = None,
        expires_at: datetime | None = None,
        limits: KeyLimits | None = None,
        web_session: bool = False,
        parent_id: str | None = None,
        safety: str = "on",
    ) -> tuple[ApiKey, str]:
        """A new key and its full ``id.secret`` text, which is shown once and never again. ``web_session``: made
        by a web sign-in, for its logout to delete. ``parent_id``: the key it was made with, whose limits (and
        its own ancestors') bound it."""
        if scope not in ("user", "admin"):
            raise InvalidFieldError("key scope must be 'user' or 'admin'")
        check_safety(safety)
        limits = limits or KeyLimits()
        check_limits(limits)
        key_id = secrets.token_hex(16)
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
        async with self.db.session() as session:
            account = await _account(session, account_ref)
            if user_id is not None:
                user = await session.get(User, user_id)
                if user is None or user.account_id != account.id:
                    raise NotFoundError(f"user {user_id!r} does not exist in account {account.name!r}")
            key = ApiKey(
                id=key_id,
                account_id=account.id,
                user_id=user_id,
                name=name,
                scope=scope,
                sealed_secret=self.box.seal(secret, key_id),
                secret_hint=secret[-4:],
                expires_at=expires_at,
                max_concurrency=limits.concurrency,
                rpm=limits.rpm,
                daily_tokens=limits.daily_tokens,
                web_session=web_session,
                parent_id=parent_id,
                safety=safety,
            )
            session.add(key)
        return key, f"{key_id}.{secret}"

    async def keys(self, account_ref: str | None = None, *, include_deleted: bool = False) -> list[KeyView]:
        async with self.db.read() as session:
            last_used_query = select(UsageRecord.key_id, func.max(UsageRecord.created_at).label("last"))
            account_id = None if account_ref is None else (await _account(session, account_ref)).id
            if account_id is not None:  # one account's console: aggregate only its keys' records, not the table's
                last_used_query = last_used_query.where(UsageRecord.account_id == account_id)
            last_used = last_used_query.group_by(UsageRecord.key_id).subquery()
            query = (
                select(ApiKey, Account.name, last_used.c.last)
                .join(Account, Account.id == ApiKey.account_id)
                .outerjoin(last_used, last_used.c.key_id == ApiKey.id)
            )
            if account_id is not None:
                query = query.where(ApiKey.account_id == account_id)
            if not include_deleted:
                query = query.where(ApiKey.status != "deleted")
            rows = await session.execute(query.order_by(ApiKey.created_at, ApiKey.id))
            return [KeyView(key, account_name, last) for key, account_name, last in rows]

    async def key(self, key_id: str) -> ApiKey:
        async with self.db.read() as session:
            return await _key(session, key_id)

    async def account_key(self, account_id: str, key_id: str) -> ApiKey:
        """A user key of ``account_id``, for the account's own console: another account's key, or an admin key,
        is as unknown as a key that does not exist."""
        key = await self.key(key_id)
        if key.account_id != account_id or key.scope != "user":
            raise NotFoundError(f"API key {key_id!r} does not exist")
        return key

    async def set_key_status(self, key_id: str, status: str) -> ApiKey:
        if status not in ("active", "disabled"):
            raise InvalidFieldError("key status must be 'active' or 'disabled'")
        async with self.db.session() as session:
            key = await _key(session, key_id)
            key.status = status
        return key

    async def delete_key(self, key_id: str) -> ApiKey:
        """Deleted keys keep their row (usage records point at it) but lose their secret for good."""
        return await delete_key(self.db, key_id)

    async def update_key(
        self,
        key_id: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        clear_expiry: bool = False,
        limits: KeyLimits | None = None,
        status: str | None = None,
        safety: str | None = None,
    ) -> ApiKey:
        """Every change in one transaction: all of them happen or none."""
        if limits is not None:
            check_limits(limits)
        if safety is not None:
            check_safety(safety)
        if status is not None and status not in ("active", "disabled"):
            raise InvalidFieldError("key status must be 'active' or 'disabled'")
        async with self.db.session() as session:
            key = await _key(session, key_id)
            if status is not None:
                key.status = status
            if name is not None:
                key.name = name
            if expires_at is not None or clear_expiry:
                key.expires_at = expires_at
            if limits is not None:
                key.max_concurrency, key.rpm, key.daily_tokens = limits.concurrency, limits.rpm, limits.daily_tokens
            if safety is not None:
                key.safety = safety
        return key

    async def key_for_auth(self, key_id: str) -> KeyRecord | None:
        # Runs on every call: one Core SELECT on a bare connection, no ORM objects.
        query = (
            select(
                ApiKey.account_id,
                Account.status,
                ApiKey.user_id,
                ApiKey.scope,
                ApiKey.status,
                ApiKey.sealed_secret,
                ApiKey.expires_at,
                ApiKey.max_concurrency,
                ApiKey.rpm,
                ApiKey.daily_tokens,
                ApiKey.parent_id,
                ApiKey.safety,
            )
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.id == key_id)
        )
        rows = await self.db.fetch(query)
        if not rows or rows[0].sealed_secret is None:
            return None
        row = rows[0]
        account_id, account_status, user_id, scope, status, sealed, expires_at = row[:7]
        concurrency, rpm, daily, parent, safety = row[7:]
        return KeyRecord(
            id=key_id,
            account_id=account_id,
            account_status=account_status,
            user_id=user_id,
            scope=scope,
            status=status,
            secret=self.box.open(sealed, key_id),
            expires_at=expires_at,
            limits=KeyLimits(concurrency, rpm, daily),
            lineage=await self.lineage(parent) if parent is not None else (),
            safety=safety,
        )

    async def lineage(self, parent_id: str) -> tuple[AncestorRecord, ...]:
        """``parent_id`` and the keys it was made from, root first: one recursive query (a second one on the
        hot path, only for keys made from keys)."""
        chain = (
            select(ApiKey.id, ApiKey.parent_id, literal(1).label("depth"))
            .where(ApiKey.id == parent_id)
            .cte("chain", recursive=True)
        )
        chain = chain.union_all(
            select(ApiKey.id, ApiKey.parent_id, chain.c.depth + 1)
            .join(chain, ApiKey.id == chain.c.parent_id)
            .where(chain.c.depth < MAX_KEY_GENERATIONS)
        )
        rows = await self.db.fetch(
            select(
                ApiKey.id,
                ApiKey.status,
                ApiKey.expires_at,
                ApiKey.max_concurrency,
                ApiKey.rpm,
                ApiKey.daily_tokens,
                ApiKey.safety,
            )
            .join(chain, chain.c.id == ApiKey.id)
            .order_by(chain.c.depth.desc())
        )
        return tuple(
            AncestorRecord(key_id, status, expires_at, KeyLimits(concurrency, rpm, daily), safety)
            for key_id, status, expires_at, concurrency, rpm, daily, safety in rows
        )


KEY_SAFETY = ("on", "optional", "off")  # strictest first


def check_safety(safety: str) -> None:
    if safety not in KEY_SAFETY:
        raise InvalidFieldError(f"key safety must be one of {', '.join(KEY_SAFETY)}, not {safety!r}")


def strictest_safety(settings: list[str]) -> str:
    """A key made from another lives by it: its calls are checked at least as strictly as any key up its chain."""
    return min(settings, key=lambda s: KEY_SAFETY.index(s) if s in KEY_SAFETY else 0)


async def _account(session: AsyncSession, ref: str) -> Account:
    """By id or by name."""
    account = await session.get(Account, ref)
    if account is None:
        account = await session.scalar(select(Account).where(Account.name == ref))
    if account is None:
        raise AccountNotFoundError(f"account {ref!r} does not exist / 账户不存在")
    return account


async def _sign_in_email_free(session: AsyncSession, email: str | None, user_id: str | None) -> None:
    """An email signs in one user only: refuse a password for an email another user already signs in with."""
    if not email or "@" not in email:
        raise InvalidFieldError("a user who signs in with a password needs an email address")
    taken = await session.scalar(
        select(User.id).where(
            func.lower(User.email) == email.strip().lower(), User.password_hash.is_not(None), User.id != (user_id or "")
        )
    )
    if taken is not None:
        raise InvalidFieldError(f"another user already signs in with {email!r}")


async def _key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.status == "deleted":
        raise NotFoundError(f"API key {key_id!r} does not exist")
    return key


async def delete_key(db: Database, key_id: str) -> ApiKey:
    """``AccountStore.delete_key`` for holders of the database only (a job's clean-up, which has no master key):
    deleting needs no secret."""
    async with db.session() as session:
        key = await _key(session, key_id)
        key.status, key.sealed_secret = "deleted", None
    return key
