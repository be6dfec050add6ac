"""The operator's API under ``/admin``: accounts, users, keys, ledger, usage and the agent center's
recommendations. Needs an admin key."""

from __future__ import annotations

import asyncio
from datetime import date

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.passwords import hash_password
from ...accounts.store import AccountStore
from ...accounts.usage import GroupBy, usage_summary
from ...errors import InvalidFieldError
from ...files.quota import quota_bytes_of
from ...protocol.accounts import (
    AccountCreate,
    AccountUpdate,
    KeyCreate,
    KeyUpdate,
    LedgerCreate,
    ListOf,
    StorageQuotaUpdate,
    UserCreate,
    UserUpdate,
)
from ...protocol.common import MAX_SQL_INT
from ...protocol.glms import Recommendation
from ..account_views import (
    account_out,
    entry_out,
    key_out,
    key_view_out,
    limits_in,
    parse_amount,
    storage_out,
    usage_report,
    user_out,
)
from ..deps import admin, platform
from ..deps import files as _files
from ..deps import glms as _glms
from ..deps import platform as _platform
from ._common import json_response

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin)])


def _store(request: Request) -> AccountStore:
    return platform(request).store


@router.post("/accounts")
async def create_account(body: AccountCreate, request: Request) -> Response:
    grant = None if body.grant is None else parse_amount(body.grant, "grant")
    account = await _store(request).create_account(body.name, grant=grant)
    return json_response(account_out(await _store(request).account_view(account.id)), status_code=201)


@router.get("/accounts")
async def list_accounts(request: Request) -> Response:
    return json_response(ListOf(data=[account_out(v) for v in await _store(request).accounts()]))


@router.get("/accounts/{ref}")
async def get_account(ref: str, request: Request) -> Response:
    return json_response(account_out(await _store(request).account_view(ref)))


@router.patch("/accounts/{ref}")
async def update_account(ref: str, body: AccountUpdate, request: Request) -> Response:
    account = await _store(request).set_account_status(ref, body.status)
    return json_response(account_out(await _store(request).account_view(account.id)))


@router.get("/accounts/{ref}/storage")
async def get_storage(ref: str, request: Request) -> Response:
    account = await _store(request).account(ref)
    usage = await _files(request).quota.usage(account.id)
    return json_response(storage_out(account.id, usage), nulls=True)


@router.put("/accounts/{ref}/storage")
async def set_storage_quota(ref: str, body: StorageQuotaUpdate, request: Request) -> Response:
    """The account's own storage quota in MB (-1: unlimited; ``null``: the server's default again)."""
    account = await _store(request).account(ref)
    quota = None if body.quota_mb is None else quota_bytes_of(body.quota_mb)
    usage = await _files(request).quota.set_quota(account.id, quota)
    return json_response(storage_out(account.id, usage), nulls=True)


@router.post("/accounts/{ref}/users")
async def create_user(ref: str, body: UserCreate, request: Request) -> Response:
    hashed = None if body.password is None else await asyncio.to_thread(hash_password, body.password)
    user = await _store(request).create_user(ref, body.name, body.email, password_hash=hashed)
    return json_response(user_out(user), status_code=201)


@router.patch("/accounts/{ref}/users/{user_id}")
async def update_user(ref: str, user_id: str, body: UserUpdate, request: Request) -> Response:
    """Set the user's web sign-in password, or remove it (``clear_password``)."""
    if (body.password is None) == (not body.clear_password):
        raise InvalidFieldError("give either password or clear_password: true")
    hashed = None if body.password is None else await asyncio.to_thread(hash_password, body.password)
    return json_response(user_out(await _store(request).set_password(ref, user_id, hashed)))


@router.post("/accounts/{ref}/keys")
async def create_key(ref: str, body: KeyCreate, request: Request) -> Response:
    key, full = await _store(request).create_key(
        ref,
        name=body.name,
        scope=body.scope,
        user_id=body.user_id,
        expires_at=body.expires_at,
        limits=limits_in(body.limits),
        safety=body.safety,
    )
    return json_response(key_out(key, full_key=full), status_code=201)


@router.get("/keys")
async def list_keys(request: Request, account: str | None = None, include_deleted: bool = False) -> Response:
    views = await _store(request).keys(account, include_deleted=include_deleted)
    return json_response(ListOf(data=[key_view_out(v) for v in views]))


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> Response:
    return json_response(key_out(await _store(request).key(key_id)))


@router.patch("/keys/{key_id}")
async def update_key(key_id: str, body: KeyUpdate, request: Request) -> Response:
    key = await _store(request).update_key(
        key_id,
        name=body.name,
        expires_at=body.expires_at,
        clear_expiry=body.clear_expiry,
        limits=limits_in(body.limits),
        status=body.status,
        safety=body.safety,
    )
    return json_response(key_out(key))


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, request: Request) -> Response:
    return json_response(key_out(await _store(request).delete_key(key_id)))


@router.post("/accounts/{ref}/ledger")
async def add_ledger_entry(ref: str, body: LedgerCreate, request: Request) -> Response:
    entry = await _store(request).add_entry(ref, body.kind, parse_amount(body.amount, "amount"), body.note)
    return json_response(entry_out(entry), status_code=201)


@router.get("/accounts/{ref}/ledger")
async def list_ledger(
    ref: str,
    request: Request,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, ge=0, le=MAX_SQL_INT),
) -> Response:
    entries = await _store(request).ledger(ref, limit=limit, before=before)
    return json_response(ListOf(data=[entry_out(e) for e in entries]))


@router.get("/usage")
async def usage(
    request: Request,
    by: GroupBy = "day",
    account: str | None = None,
    key_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Response:
    account_id = None if account is None else (await _store(request).account(account)).id
    rows = await usage_summary(
        _platform(request).db, by=by, account_id=account_id, key_id=key_id, since=since, until=until
    )
    return json_response(usage_report(by, rows))


@router.put("/glms/{agent_id}/recommendation")
async def recommend_agent(agent_id: str, body: Recommendation, request: Request) -> Response:
    await _glms(request).recommend(agent_id, body.rank)
    return json_response(body)
