"""Accounts, users, sealed API keys and the ledger, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from openglm.accounts import ledger
from openglm.accounts.limits import KeyLimits
from openglm.accounts.money import to_nano
from openglm.accounts.sealing import SealingError, SecretBox
from openglm.accounts.store import AccountStore
from openglm.errors import InvalidFieldError, NotFoundError
from openglm.store.db import Database, open_database
from openglm.store.models import LedgerEntry, Meta, UsageRecord

MASTER_KEY = bytes(range(32))
OTHER_MASTER_KEY = bytes(range(1, 33))
FREE_GRANT = to_nano("5")


@pytest.fixture
def store(database: Database) -> AccountStore:
    return AccountStore(database, SecretBox(MASTER_KEY), free_grant=FREE_GRANT)


async def raw_row(database: Database, table: str, row_id: str) -> dict[str, Any]:
    async with database.engine.connect() as conn:
        row = (await conn.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id})).mappings().one()
    return dict(row)


async def raw_execute(database: Database, sql: str, **params: Any) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def count(database: Database, table: str) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


# --- accounts ------------------------------------------------------------------------


async def test_new_account_gets_the_free_grant_as_one_entry(store: AccountStore) -> None:
    account = await store.create_account("acme")
    entries = await store.ledger(account.id)
    assert [(e.kind, e.amount, e.usage_id) for e in entries] == [("grant", FREE_GRANT, None)]
    assert (await store.account_view(account.id)).balance == FREE_GRANT
    assert account.status == "active"
    assert account.id.startswith("acct_")
    assert account.created_at.tzinfo is not None


async def test_explicit_grant_overrides_the_default(store: AccountStore) -> None:
    account = await store.create_account("acme", grant=to_nano(1))
    assert [(e.kind, e.amount) for e in await store.ledger(account.id)] == [("grant", to_nano(1))]


async def test_zero_grant_writes_no_entry(store: AccountStore) -> None:
    account = await store.create_account("acme", grant=0)
    assert await store.ledger(account.id) == []
    assert (await store.account_view(account.id)).balance == 0


async def test_store_without_free_grant_writes_no_entry(database: Database) -> None:
    store = AccountStore(database, SecretBox(MASTER_KEY))
    account = await store.create_account("acme")
    assert await store.ledger(account.id) == []


@pytest.mark.parametrize("second", ["acme", "  acme  "])
async def test_duplicate_account_name(store: AccountStore, second: str) -> None:
    await store.create_account("acme")
    with pytest.raises(InvalidFieldError) as caught:
        await store.create_account(second)
    assert caught.value.code == "1214"
    assert caught.value.status == 400
    # the failed attempt left nothing behind and the store still works
    assert [view.account.name for view in await store.accounts()] == ["acme"]
    await store.create_account("other")


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
async def test_empty_account_name(store: AccountStore, name: str) -> None:
    with pytest.raises(InvalidFieldError):
        await store.create_account(name)
    assert await store.accounts() == []


async def test_account_name_is_stripped(store: AccountStore) -> None:
    account = await store.create_account("  acme ")
    assert account.name == "acme"


async def test_account_by_id_and_by_name(store: AccountStore) -> None:
    account = await store.create_account("acme")
    assert (await store.account(account.id)).id == account.id
    assert (await store.account("acme")).id == account.id
    assert (await store.account_view("acme")).balance == FREE_GRANT


@pytest.mark.parametrize("ref", ["nobody", "acct_0000000000000000", ""])
async def test_unknown_account(store: AccountStore, ref: str) -> None:
    await store.create_account("acme")
    with pytest.raises(NotFoundError) as caught:
        await store.account(ref)
    assert caught.value.status == 404
    with pytest.raises(NotFoundError):
        await store.account_view(ref)
    with pytest.raises(NotFoundError):
        await store.create_key(ref)


async def test_accounts_list_with_balances(store: AccountStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b", grant=0)
    await store.add_entry("b", "topup", to_nano(2))
    balances = {view.account.id: view.balance for view in await store.accounts()}
    assert balances == {a.id: FREE_GRANT, b.id: to_nano(2)}


async def test_ensure_account_creates_once_without_grant(store: AccountStore) -> None:
    first = await store.ensure_account("local")
    second = await store.ensure_account("local")
    assert first.id == second.id
    assert await store.ledger("local") == []


async def test_account_status(store: AccountStore) -> None:
    account = await store.create_account("acme")
    assert (await store.set_account_status("acme", "disabled")).status == "disabled"
    assert (await store.account(account.id)).status == "disabled"
    assert (await store.set_account_status(account.id, "active")).status == "active"
    with pytest.raises(InvalidFieldError):
        await store.set_account_status("acme", "deleted")


# --- users ---------------------------------------------------------------------------


async def test_users_belong_to_their_account(store: AccountStore) -> None:
    await store.create_account("acme")
    await store.create_account("other")
    bob = await store.create_user("acme", "bob", "bob@example.com")
    ada = await store.create_user("acme", "ada")
    await store.create_user("other", "eve")
    users = await store.users("acme")
    assert [(u.id, u.name, u.email) for u in users] == [(ada.id, "ada", None), (bob.id, "bob", "bob@example.com")]
    with pytest.raises(NotFoundError):
        await store.create_user("nobody", "x")


async def test_key_for_a_user(store: AccountStore) -> None:
    await store.create_account("acme")
    other = await store.create_account("other")
    ada = await store.create_user("acme", "ada")
    key, _ = await store.create_key("acme", user_id=ada.id)
    assert key.user_id == ada.id
    assert (await store.key_for_auth(key.id)).user_id == ada.id  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        await store.create_key(other.id, user_id=ada.id)
    with pytest.raises(NotFoundError):
        await store.create_key("acme", user_id="user_missing")


# --- keys ----------------------------------------------------------------------------


async def test_create_key_returns_id_dot_secret(store: AccountStore) -> None:
    await store.create_account("acme")
    key, full = await store.create_key("acme", name="ci")
    key_id, secret = full.split(".")
    assert re.fullmatch(r"[0-9a-f]{32}", key_id)
    assert key_id == key.id
    assert re.fullmatch(r"[A-Za-z0-9]{24}", secret)
    assert key.secret_hint == secret[-4:]
    assert key.name == "ci"
    assert key.scope == "user"
    assert key.status == "active"


async def test_secret_is_not_stored_in_plain_text(store: AccountStore, database: Database) -> None:
    await store.create_account("acme")
    key, full = await store.create_key("acme")
    secret = full.split(".")[1]
    row = await raw_row(database, "api_keys", key.id)
    assert row["secret_hint"] == secret[-4:]
    for column, value in row.items():
        if value is None:
            continue
        assert secret.encode() not in as_bytes(value), column
        assert secret[:8].encode() not in as_bytes(value), column
    sealed = as_bytes(row["sealed_secret"])
    assert len(sealed) == 12 + len(secret) + 16  # nonce + ciphertext + GCM tag


async def test_secret_is_nowhere_in_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    database = await open_database(f"sqlite:///{path}")
    try:
        store = AccountStore(database, SecretBox(MASTER_KEY))
        await store.create_account("acme")
        key, full = await store.create_key("acme")
        secret = full.split(".")[1].encode()
        files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        contents = b"".join(p.read_bytes() for p in files)
        assert key.id.encode() in contents  # the id is there in clear, so the search does look at the data
        assert secret not in contents
    finally:
        await database.close()


async def test_key_for_auth_opens_the_secret(store: AccountStore) -> None:
    account = await store.create_account("acme")
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    key, full = await store.create_key(
        "acme", scope="admin", expires_at=expires, limits=KeyLimits(concurrency=3, rpm=30, daily_tokens=10**12)
    )
    record = await store.key_for_auth(key.id)
    assert record is not None
    assert f"{record.id}.{record.secret}" == full
    assert record.account_id == account.id
    assert record.account_status == "active"
    assert record.scope == "admin"
    assert record.status == "active"
    assert record.expires_at == expires
    assert record.limits == KeyLimits(3, 30, 10**12)


async def test_key_for_auth_of_unknown_key(store: AccountStore) -> None:
    assert await store.key_for_auth("0" * 32) is None


async def test_invalid_scope(store: AccountStore) -> None:
    await store.create_account("acme")
    with pytest.raises(InvalidFieldError):
        await store.create_key("acme", scope="root")


async def test_sealed_secret_moved_to_another_key_cannot_be_opened(store: AccountStore, database: Database) -> None:
    await store.create_account("acme")
    victim, _ = await store.create_key("acme")
    attacker, _ = await store.create_key("acme")
    await raw_execute(
        database,
        "UPDATE api_keys SET sealed_secret = (SELECT sealed_secret FROM api_keys WHERE id = :src) WHERE id = :dst",
        src=victim.id,
        dst=attacker.id,
    )
    moved = await raw_row(database, "api_keys", attacker.id)
    assert as_bytes(moved["sealed_secret"]) == as_bytes(
        (await raw_row(database, "api_keys", victim.id))["sealed_secret"]
    )
    with pytest.raises(SealingError):
        await store.key_for_auth(attacker.id)
    assert await store.key_for_auth(victim.id) is not None


async def test_secret_cannot_be_opened_with_another_master_key(store: AccountStore, database: Database) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme")
    with pytest.raises(SealingError):
        await AccountStore(database, SecretBox(OTHER_MASTER_KEY)).key_for_auth(key.id)


async def test_keys_list_hides_deleted_unless_asked(store: AccountStore) -> None:
    await store.create_account("acme")
    await store.create_account("other")
    kept, _ = await store.create_key("acme", name="kept")
    gone, _ = await store.create_key("acme", name="gone")
    theirs, _ = await store.create_key("other")
    await store.delete_key(gone.id)
    assert {v.key.id for v in await store.keys("acme")} == {kept.id}
    assert {v.key.id for v in await store.keys("acme", include_deleted=True)} == {kept.id, gone.id}
    assert {v.key.id for v in await store.keys()} == {kept.id, theirs.id}
    views = {v.key.id: v for v in await store.keys(include_deleted=True)}
    assert set(views) == {kept.id, gone.id, theirs.id}
    assert views[theirs.id].account_name == "other"
    assert views[kept.id].last_used_at is None
    with pytest.raises(NotFoundError):
        await store.keys("nobody")


async def test_delete_wipes_the_secret(store: AccountStore, database: Database) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme")
    deleted = await store.delete_key(key.id)
    assert deleted.status == "deleted"
    row = await raw_row(database, "api_keys", key.id)
    assert row["status"] == "deleted"
    assert row["sealed_secret"] is None
    assert await store.key_for_auth(key.id) is None
    for again in (store.key, store.delete_key):
        with pytest.raises(NotFoundError):
            await again(key.id)
    with pytest.raises(NotFoundError):
        await store.set_key_status(key.id, "active")
    with pytest.raises(NotFoundError):
        await store.update_key(key.id, name="revived")


async def test_key_status(store: AccountStore) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme")
    assert (await store.set_key_status(key.id, "disabled")).status == "disabled"
    assert (await store.key_for_auth(key.id)).status == "disabled"  # type: ignore[union-attr]
    assert (await store.key(key.id)).status == "disabled"
    assert (await store.set_key_status(key.id, "active")).status == "active"
    for bad in ("deleted", "paused", ""):
        with pytest.raises(InvalidFieldError):
            await store.set_key_status(key.id, bad)
    with pytest.raises(NotFoundError):
        await store.set_key_status("0" * 32, "active")


async def test_account_status_reaches_key_for_auth(store: AccountStore) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme")
    await store.set_account_status("acme", "disabled")
    assert (await store.key_for_auth(key.id)).account_status == "disabled"  # type: ignore[union-attr]


async def test_update_key_limits_name_and_expiry(store: AccountStore) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme", name="old", limits=KeyLimits(1, 2, 3))
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)

    await store.update_key(key.id, name="new", expires_at=expires, limits=KeyLimits(concurrency=8))
    record = await store.key_for_auth(key.id)
    assert record is not None
    assert record.limits == KeyLimits(8, None, None)
    assert record.expires_at == expires
    assert (await store.key(key.id)).name == "new"

    await store.update_key(key.id)  # nothing asked, nothing changed
    assert await store.key_for_auth(key.id) == record

    await store.update_key(key.id, clear_expiry=True)
    record = await store.key_for_auth(key.id)
    assert record is not None
    assert record.expires_at is None
    assert record.limits == KeyLimits(8, None, None)


async def test_check_master_key(store: AccountStore, database: Database) -> None:
    await store.check_master_key()
    async with database.session() as session:
        stored = await session.get(Meta, "secret_fingerprint")
    assert stored is not None
    assert stored.value == store.box.fingerprint
    await store.check_master_key()  # same key again: fine


async def test_same_database_opened_with_another_master_key(store: AccountStore, db_url: str) -> None:
    await store.check_master_key()
    reopened = await open_database(db_url)
    try:
        await AccountStore(reopened, SecretBox(MASTER_KEY)).check_master_key()
        with pytest.raises(SealingError):
            await AccountStore(reopened, SecretBox(OTHER_MASTER_KEY)).check_master_key()
    finally:
        await reopened.close()


# --- ledger --------------------------------------------------------------------------


async def test_balance_is_the_sum_of_entries(store: AccountStore) -> None:
    await store.create_account("acme")
    await store.add_entry("acme", "topup", to_nano(10), note="invoice 1")
    await store.add_entry("acme", "adjustment", -to_nano(3))
    await store.add_entry("acme", "refund", to_nano("0.000000001"))
    await store.add_entry("acme", "grant", to_nano(2))
    await store.add_entry("acme", "adjustment", to_nano(1))
    expected = FREE_GRANT + to_nano(10) - to_nano(3) + 1 + to_nano(2) + to_nano(1)
    assert (await store.account_view("acme")).balance == expected
    assert sum(e.amount for e in await store.ledger("acme")) == expected


async def test_balance_can_go_negative(store: AccountStore) -> None:
    await store.create_account("acme", grant=0)
    await store.add_entry("acme", "adjustment", -to_nano(7))
    assert (await store.account_view("acme")).balance == -to_nano(7)


async def test_add_entry_returns_the_entry(store: AccountStore) -> None:
    account = await store.create_account("acme")
    entry = await store.add_entry("acme", "topup", to_nano(10), note="invoice 1")
    assert entry.id > 0
    assert (entry.account_id, entry.kind, entry.amount, entry.usage_id, entry.note) == (
        account.id,
        "topup",
        to_nano(10),
        None,
        "invoice 1",
    )
    assert entry.created_at.tzinfo is not None
    assert (await store.ledger("acme"))[0] == entry


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("topup", 0),
        ("topup", -1),
        ("grant", -to_nano(1)),
        ("refund", -1),
        ("adjustment", 0),
        ("charge", -to_nano(1)),
        ("charge", to_nano(1)),
        ("bonus", to_nano(1)),
    ],
)
async def test_add_entry_rules(store: AccountStore, kind: str, amount: int) -> None:
    await store.create_account("acme")
    with pytest.raises(InvalidFieldError):
        await store.add_entry("acme", kind, amount)
    assert (await store.account_view("acme")).balance == FREE_GRANT


async def test_add_entry_refuses_an_amount_too_large_to_store(store: AccountStore) -> None:
    await store.create_account("acme")
    with pytest.raises(InvalidFieldError):
        await store.add_entry("acme", "topup", to_nano("1e10"))
    await store.add_entry("acme", "topup", to_nano("1e8"))  # the largest single entry fits


async def test_add_entry_to_unknown_account(store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        await store.add_entry("nobody", "topup", 1)


async def test_entries_newest_first_with_paging(store: AccountStore) -> None:
    await store.create_account("acme", grant=0)
    await store.create_account("other")
    for n in range(1, 6):
        await store.add_entry("acme", "topup", n)
        await store.add_entry("other", "topup", 100 + n)
    first = await store.ledger("acme", limit=2)
    assert [e.amount for e in first] == [5, 4]
    second = await store.ledger("acme", limit=2, before=first[-1].id)
    assert [e.amount for e in second] == [3, 2]
    rest = await store.ledger("acme", limit=2, before=second[-1].id)
    assert [e.amount for e in rest] == [1]
    assert await store.ledger("acme", before=rest[-1].id) == []
    everything = await store.ledger("acme")
    assert [e.amount for e in everything] == [5, 4, 3, 2, 1]
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)


# --- append-only tables --------------------------------------------------------------


async def usage_record(database: Database, account_id: str, usage_id: str = "chatcmpl-1") -> None:
    async with database.session() as session:
        session.add(
            UsageRecord(
                id=usage_id,
                account_id=account_id,
                model="glm-4",
                endpoint="chat.completions",
                prompt_tokens=10,
                completion_tokens=5,
                cost=100,
                status="succeeded",
                started_at=datetime.now(UTC),
            )
        )
        await session.flush()
        session.add(LedgerEntry(account_id=account_id, kind="charge", amount=-100, usage_id=usage_id))


APPEND_ONLY_STATEMENTS = [
    "UPDATE ledger_entries SET amount = 0",
    "UPDATE ledger_entries SET note = 'edited' WHERE kind = 'grant'",
    "DELETE FROM ledger_entries",
    "DELETE FROM ledger_entries WHERE kind = 'charge'",
    "UPDATE usage_records SET cost = 0",
    "DELETE FROM usage_records",
]


@pytest.mark.parametrize("sql", APPEND_ONLY_STATEMENTS)
async def test_usage_and_ledger_are_append_only(store: AccountStore, database: Database, sql: str) -> None:
    account = await store.create_account("acme")
    await usage_record(database, account.id)
    before = (await store.account_view("acme")).balance
    with pytest.raises(DBAPIError, match="append-only"):
        await raw_execute(database, sql)
    assert (await store.account_view("acme")).balance == before == FREE_GRANT - 100
    assert await count(database, "ledger_entries") == 2
    assert await count(database, "usage_records") == 1


@pytest.mark.parametrize("table", ["ledger_entries", "usage_records"])
async def test_postgres_truncate_is_refused_too(store: AccountStore, database: Database, table: str) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    account = await store.create_account("acme")
    await usage_record(database, account.id)
    with pytest.raises(DBAPIError, match="append-only"):
        await raw_execute(database, f"TRUNCATE {table} CASCADE")
    assert await count(database, table) >= 1


async def test_orm_cannot_edit_a_ledger_entry_either(store: AccountStore, database: Database) -> None:
    await store.create_account("acme")
    with pytest.raises(DBAPIError, match="append-only"):
        async with database.session() as session:
            entry = await session.scalar(select(LedgerEntry))
            assert entry is not None
            entry.amount = to_nano(1000)
    assert (await store.account_view("acme")).balance == FREE_GRANT


async def test_other_tables_stay_editable(store: AccountStore, database: Database) -> None:
    account = await store.create_account("acme")
    await raw_execute(database, "UPDATE accounts SET name = 'renamed' WHERE id = :id", id=account.id)
    assert (await store.account(account.id)).name == "renamed"


async def test_balances_are_kept_by_the_database_and_verify_clean(store: AccountStore, database: Database) -> None:
    account = await store.create_account("acme")
    await store.add_entry("acme", "topup", to_nano(3))
    await usage_record(database, account.id)  # a raw ORM insert: the trigger still moves the balance
    assert (await store.account_view("acme")).balance == FREE_GRANT + to_nano(3) - 100
    async with database.read() as session:
        assert await ledger.verify(session) == []


async def test_verify_reports_a_balance_that_left_the_ledger(store: AccountStore, database: Database) -> None:
    account = await store.create_account("acme")
    await raw_execute(database, f"UPDATE account_balances SET balance = balance + 1 WHERE account_id = '{account.id}'")
    async with database.read() as session:
        (mismatch,) = await ledger.verify(session)
    assert (mismatch.account_id, mismatch.kept, mismatch.summed) == (account.id, FREE_GRANT + 1, FREE_GRANT)


# --- review fixes: every operator-made amount and limit is checked --------------------


@pytest.mark.parametrize("grant", [-1, to_nano("1e9")])
async def test_a_bad_grant_at_creation_is_refused_and_nothing_is_created(store: AccountStore, grant: int) -> None:
    with pytest.raises(InvalidFieldError):
        await store.create_account("acme", grant=grant)
    assert await store.accounts() == []


@pytest.mark.parametrize("limits", [KeyLimits(rpm=-1), KeyLimits(concurrency=-2), KeyLimits(daily_tokens=-5)])
async def test_negative_limits_are_refused(store: AccountStore, limits: KeyLimits) -> None:
    await store.create_account("acme")
    with pytest.raises(InvalidFieldError):
        await store.create_key("acme", limits=limits)
    key, _ = await store.create_key("acme")
    with pytest.raises(InvalidFieldError):
        await store.update_key(key.id, limits=limits)


async def test_update_key_applies_all_changes_or_none(store: AccountStore) -> None:
    await store.create_account("acme")
    key, _ = await store.create_key("acme", name="old")
    with pytest.raises(InvalidFieldError):
        await store.update_key(key.id, name="new", status="frozen")
    assert (await store.key(key.id)).name == "old"
    updated = await store.update_key(key.id, name="new", status="disabled", limits=KeyLimits(rpm=5))
    assert (updated.name, updated.status, updated.rpm) == ("new", "disabled", 5)


async def test_unknown_account_has_zhipus_code(store: AccountStore) -> None:
    with pytest.raises(NotFoundError) as info:
        await store.account("nobody")
    assert (info.value.code, info.value.status) == ("1111", 404)
