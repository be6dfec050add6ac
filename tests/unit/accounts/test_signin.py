"""Web sign-in: the per-email throttle, and sessions on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from openglm.accounts import signin as signin_module
from openglm.accounts.passwords import hash_password
from openglm.accounts.sealing import SecretBox
from openglm.accounts.signin import SESSION_KEY_NAME, LoginThrottle, SignIn
from openglm.accounts.store import AccountStore
from openglm.errors import (
    AccountInactiveError,
    FrequencyLimitError,
    InvalidFieldError,
    NotFoundError,
    TokenVerificationError,
)
from openglm.store.db import Database
from openglm.store.models import UsageRecord

PASSWORD = "a long password"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_a_minute_lock_the_email_until_the_oldest_leaves() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window=60, clock=clock)
    for _ in range(5):
        throttle.check("Ada@example.com")
        throttle.failed("ada@example.com ")
        clock.now += 1
    with pytest.raises(FrequencyLimitError) as refused:
        throttle.check("ADA@example.com")
    assert refused.value.status == 429 and refused.value.retry_after == pytest.approx(55)
    throttle.check("bob@example.com")  # other emails are not held up
    clock.now = 1000.0 + 60.5  # the first failure has left the window
    throttle.check("ada@example.com")
    throttle.failed("ada@example.com")
    with pytest.raises(FrequencyLimitError):
        throttle.check("ada@example.com")


def test_a_success_clears_the_failures() -> None:
    throttle = LoginThrottle(max_failures=2, window=60, clock=Clock())
    throttle.failed("ada@example.com")
    throttle.succeeded("ada@example.com")
    throttle.failed("ada@example.com")
    throttle.check("ada@example.com")


def test_the_least_recently_failed_email_is_forgotten_first() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window=60, clock=clock, max_tracked=2)
    throttle.failed("victim@example.com")
    throttle.failed("other@example.com")
    throttle.failed("victim@example.com")  # the attacked email keeps failing: it stays
    throttle.failed("new@example.com")  # one too many: other@ (the least recently failed) goes
    with pytest.raises(FrequencyLimitError):
        throttle.check("victim@example.com")
    throttle.failed("other@example.com")
    throttle.check("other@example.com")  # one failure only: it had been forgotten


def test_a_reservation_counts_until_released() -> None:
    throttle = LoginThrottle(max_failures=2, window=60, clock=Clock())
    stamp = throttle.reserve("ada@example.com")
    throttle.reserve("ada@example.com")
    with pytest.raises(FrequencyLimitError):
        throttle.reserve("ada@example.com")
    throttle.release("ada@example.com", stamp)
    throttle.reserve("ada@example.com")


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(bytes(range(32))))


@pytest.fixture
def signin(store: AccountStore) -> SignIn:
    return SignIn(store, session_hours=12)


async def test_sign_in_makes_a_session_key_that_expires(store: AccountStore, signin: SignIn) -> None:
    account = await store.create_account("acme")
    user = await store.set_password("acme", "Ada@Example.com", hash_password(PASSWORD))
    assert user.name == "Ada" and user.account_id == account.id  # a new email makes a new user
    session = await signin.login(" ada@example.COM", PASSWORD)
    assert session.user.id == user.id and session.full_key.startswith(session.key.id + ".")
    key = await store.key(session.key.id)
    assert key.name == SESSION_KEY_NAME and key.web_session and key.user_id == user.id and key.scope == "user"
    assert key.expires_at is not None
    assert abs(key.expires_at - (datetime.now(UTC) + timedelta(hours=12))) < timedelta(minutes=1)
    record = await store.key_for_auth(session.key.id)
    assert record is not None and record.secret == session.full_key.split(".")[1]


async def test_wrong_password_unknown_email_and_no_password_are_one_error(store: AccountStore, signin: SignIn) -> None:
    await store.create_account("acme")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    await store.create_user("acme", "Bob", "bob@example.com")  # no password: cannot sign in
    messages = set()
    for email, password in (("ada@example.com", "wrong"), ("nobody@example.com", PASSWORD), ("bob@example.com", "")):
        with pytest.raises(TokenVerificationError) as refused:
            await signin.login(email, password)
        assert refused.value.code == "1004" and refused.value.status == 401
        messages.add(refused.value.message)
    assert len(messages) == 1


async def test_a_disabled_account_cannot_sign_in(store: AccountStore, signin: SignIn) -> None:
    await store.create_account("acme")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    await store.set_account_status("acme", "disabled")
    with pytest.raises(AccountInactiveError):
        await signin.login("ada@example.com", PASSWORD)


async def test_logout_deletes_only_session_keys(store: AccountStore, signin: SignIn) -> None:
    account = await store.create_account("acme")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    session = await signin.login("ada@example.com", PASSWORD)
    ordinary, _ = await store.create_key(account.id, name=SESSION_KEY_NAME)  # same name, not a session
    await signin.logout(account.id, ordinary.id)
    assert (await store.key(ordinary.id)).status == "active"
    await signin.logout(account.id, None)  # authentication off: nothing to revoke
    other = await store.create_account("other")
    with pytest.raises(NotFoundError):
        await signin.logout(other.id, session.key.id)
    await signin.logout(account.id, session.key.id)
    assert await store.key_for_auth(session.key.id) is None


async def test_an_email_signs_in_one_user_only(store: AccountStore) -> None:
    await store.create_account("acme")
    await store.create_account("other")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    with pytest.raises(InvalidFieldError):
        await store.set_password("other", "ADA@example.com", hash_password(PASSWORD))
    with pytest.raises(InvalidFieldError):
        await store.create_user("other", "Ada", "ada@example.com", password_hash=hash_password(PASSWORD))
    with pytest.raises(InvalidFieldError):
        await store.create_user("other", "No email", None, password_hash=hash_password(PASSWORD))
    again = await store.set_password("acme", "ada@example.com", hash_password("another password"))
    cleared = await store.set_password("acme", again.id, None)
    assert cleared.password_hash is None and cleared.id == again.id
    assert await store.user_for_sign_in("ada@example.com") is None
    await store.set_password("other", "ada@example.com", hash_password(PASSWORD))  # free again
    found = await store.user_for_sign_in("Ada@Example.com")
    assert found is not None and found.account_id == (await store.account("other")).id
    with pytest.raises(NotFoundError):
        await store.set_password("acme", "user_unknown", None)


async def test_the_console_reaches_only_its_own_user_keys(store: AccountStore) -> None:
    acme = await store.create_account("acme")
    other = await store.create_account("other")
    mine, _ = await store.create_key(acme.id)
    admin, _ = await store.create_key(acme.id, scope="admin")
    theirs, _ = await store.create_key(other.id)
    assert (await store.account_key(acme.id, mine.id)).id == mine.id
    for key in (admin, theirs):
        with pytest.raises(NotFoundError):
            await store.account_key(acme.id, key.id)


async def test_parallel_wrong_sign_ins_get_five_password_checks_at_most(
    store: AccountStore, signin: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_account("acme")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    checks = []
    real = signin_module.verify_password

    def counting(password: str, hashed: str | None) -> bool:
        checks.append(password)
        return real(password, hashed)

    monkeypatch.setattr(signin_module, "verify_password", counting)
    for email in ("ada@example.com", "nobody@example.com"):  # a known and an unknown email alike
        checks.clear()
        results = await asyncio.gather(*(signin.login(email, f"wrong {i}") for i in range(12)), return_exceptions=True)
        assert len(checks) == 5
        assert sum(isinstance(r, TokenVerificationError) for r in results) == 5
        refused = [r for r in results if isinstance(r, FrequencyLimitError)]
        assert len(refused) == 7 and all(r.status == 429 and r.retry_after for r in refused)
    with pytest.raises(FrequencyLimitError):  # even the right password, until the window has passed
        await signin.login("ada@example.com", PASSWORD)


async def test_password_checks_running_at_once_are_bounded(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_account("acme")
    await store.set_password("acme", "ada@example.com", hash_password(PASSWORD))
    running, most = 0, 0

    def slow(password: str, hashed: str | None) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        time.sleep(0.3)
        running -= 1
        return False

    monkeypatch.setattr(signin_module, "verify_password", slow)
    signin = SignIn(store, session_hours=12, max_verifying=2, verify_wait=0.05)
    emails = [f"user{i}@example.com" for i in range(4)]
    results = await asyncio.gather(*(signin.login(e, "wrong") for e in emails), return_exceptions=True)
    assert most == 2
    assert sum(isinstance(r, TokenVerificationError) for r in results) == 2
    busy = [(e, r) for e, r in zip(emails, results, strict=True) if isinstance(r, FrequencyLimitError)]
    assert len(busy) == 2 and all(r.retry_after == 1.0 for _, r in busy)
    for email, _ in busy:  # their attempts were never checked: not counted against the email
        assert not signin.throttle._failures[email]


async def test_clearing_the_password_of_an_unknown_email_creates_no_user(store: AccountStore) -> None:
    await store.create_account("acme")
    with pytest.raises(NotFoundError):
        await store.set_password("acme", "ghost@example.com", None)
    assert await store.users("acme") == []
    user = await store.set_password("acme", "  Ada@example.com ", hash_password(PASSWORD))
    assert user.email == "Ada@example.com"  # stored stripped, as sign-in compares it
    assert (await store.user_for_sign_in("ada@example.com")) is not None
    made = await store.create_user("acme", "Bob", " bob@example.com ")
    assert made.email == "bob@example.com"


async def test_the_console_key_list_sees_only_its_accounts_usage(store: AccountStore, database: Database) -> None:
    acme = await store.create_account("acme")
    other = await store.create_account("other")
    mine, _ = await store.create_key(acme.id, name="mine")
    theirs, _ = await store.create_key(other.id, name="theirs")
    async with database.session() as session:
        for n, (account, key) in enumerate(((acme, mine), (other, theirs), (other, theirs))):
            session.add(
                UsageRecord(
                    id=f"chatcmpl-{n}",
                    account_id=account.id,
                    key_id=key.id,
                    model="glm-4",
                    endpoint="chat.completions",
                    status="succeeded",
                    started_at=datetime.now(UTC),
                )
            )
    [view] = await store.keys(acme.id)
    assert view.key.id == mine.id and view.last_used_at is not None
    everyone = {v.key.id: v.last_used_at for v in await store.keys()}
    assert set(everyone) == {mine.id, theirs.id} and all(everyone.values())
