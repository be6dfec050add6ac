"""The console's rules for the keys an account makes and changes for itself (``accounts/console.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openglm.accounts import console
from openglm.accounts.auth import Principal
from openglm.accounts.limits import Ancestor, KeyLimits
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import MAX_KEY_GENERATIONS, AccountStore
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
    # and each records the key it was made with: its limits bound the new key's (limits.py, auth.py)
    assert (child.parent_id, grandchild.parent_id) == (parent.id, child.id)
    record = await store.key_for_auth(grandchild.id)
    assert record is not None
    assert [(a.id, a.limits) for a in record.lineage] == [
        (parent.id, KeyLimits(2, 30, None)),
        (child.id, KeyLimits(2, 30, None)),
    ]


async def test_keys_made_from_keys_stop_after_eight_generations(store: AccountStore) -> None:
    account = await store.create_account("acme")
    key, _ = await store.create_key(account.id)
    lineage: tuple[Ancestor, ...] = ()
    for _ in range(MAX_KEY_GENERATIONS - 1):
        made, _ = await console.create_key(store, Principal(account.id, key.id, lineage=lineage), "next")
        lineage, key = (*lineage, Ancestor(key.id, KeyLimits())), made
    record = await store.key_for_auth(key.id)
    assert record is not None and len(record.lineage) == MAX_KEY_GENERATIONS - 1
    with pytest.raises(PermissionDeniedError, match="generations"):
        await console.create_key(store, Principal(account.id, key.id, lineage=lineage), "one too many")


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
    assert made.parent_id is None  # the session stands for the user's password, not for a key
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
