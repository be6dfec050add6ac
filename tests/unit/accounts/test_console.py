"""The console's rules for the keys an account makes and changes for itself (``accounts/console.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openglm.accounts import console
from openglm.accounts.auth import Principal
from openglm.accounts.limits import KeyLimits
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import AccountStore
from openglm.errors import NotFoundError, PermissionDeniedError
from openglm.store.db import Database


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(bytes(range(32))))


async def test_a_key_makes_keys_no_stronger_and_no_longer_lived_than_itself(store: AccountStore) -> None:
    account = await store.create_account("acme")
    expires = datetime.now(UTC) + timedelta(days=3)
    parent, _ = await store.create_key(
        account.id, name="ci", expires_at=expires, limits=KeyLimits(concurrency=2, rpm=30, daily_tokens=None)
    )
    child, _ = await console.create_key(store, Principal(account.id, parent.id), "child")
    assert child.name == "child" and child.account_id == account.id and child.scope == "user"
    assert child.expires_at == expires
    assert (child.max_concurrency, child.rpm, child.daily_tokens) == (2, 30, None)
    grandchild, _ = await console.create_key(store, Principal(account.id, child.id), "grandchild")
    assert grandchild.expires_at == expires and (grandchild.max_concurrency, grandchild.rpm) == (2, 30)


async def test_a_sign_in_session_makes_lasting_keys_with_the_default_limits(store: AccountStore) -> None:
    account = await store.create_account("acme")
    session, _ = await store.create_key(
        account.id,
        name="web sign-in",
        expires_at=datetime.now(UTC) + timedelta(hours=12),
        limits=KeyLimits(concurrency=1, rpm=1, daily_tokens=1),
        web_session=True,
    )
    made, _ = await console.create_key(store, Principal(account.id, session.id), "laptop")
    assert made.expires_at is None and not made.web_session
    assert (made.max_concurrency, made.rpm, made.daily_tokens) == (None, None, None)


async def test_with_authentication_off_the_console_makes_no_keys(store: AccountStore) -> None:
    account = await store.create_account("local")
    with pytest.raises(PermissionDeniedError) as refused:
        await console.create_key(store, Principal(account.id, None), "open")
    assert refused.value.status == 403 and "authentication is off" in refused.value.message
    assert await store.keys(account.id) == []


async def test_the_console_disables_and_deletes_but_does_not_enable(store: AccountStore) -> None:
    account = await store.create_account("acme")
    caller, _ = await store.create_key(account.id, name="mine")
    me = Principal(account.id, caller.id)
    key, _ = await store.create_key(account.id, name="other")
    renamed = await console.update_key(store, me, key.id, name="renamed", disabled=False)  # active: a no-op
    assert renamed.status == "active" and renamed.name == "renamed"
    assert (await console.update_key(store, me, key.id, name=None, disabled=True)).status == "disabled"
    with pytest.raises(PermissionDeniedError) as refused:
        await console.update_key(store, me, key.id, name=None, disabled=False)
    assert refused.value.status == 403 and "ask an operator" in refused.value.message
    await store.set_key_status(key.id, "disabled")  # an operator's disabling holds just the same
    assert (await store.key(key.id)).status == "disabled"
    await console.delete_key(store, me, key.id)
    with pytest.raises(NotFoundError):
        await console.update_key(store, me, key.id, name="x", disabled=None)
    other = await store.create_account("other")
    with pytest.raises(NotFoundError):
        await console.delete_key(store, Principal(other.id, None), caller.id)
