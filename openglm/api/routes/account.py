"""The caller's own account: balance, usage, ledger, its API keys and the price list (both path prefixes)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts import console
from ...accounts.prices import price_list
from ...accounts.store import AccountStore
from ...accounts.usage import GroupBy, usage_summary
from ...protocol.accounts import ConsoleKeyCreate, ConsoleKeyUpdate, ListOf
from ...protocol.common import MAX_SQL_INT
from ..account_views import (
    account_out,
    console_key_out,
    console_new_key,
    entry_out,
    price_out,
    storage_out,
    usage_report,
)
from ..deps import Caller, platform
from ..deps import files as _files
from ..deps import models as _models
from ..deps import platform as _platform
from ._common import both_prefixes, json_response

router = APIRouter(tags=["account"])


@both_prefixes(router, "GET", "/account")
async def my_account(request: Request, principal: Caller) -> Response:
    return json_response(account_out(await _platform(request).store.account_view(principal.account_id)))


@both_prefixes(router, "GET", "/account/storage")
async def my_storage(request: Request, principal: Caller) -> Response:
    usage = await _files(request).quota.usage(principal.account_id)
    return json_response(storage_out(principal.account_id, usage), nulls=True)


@both_prefixes(router, "GET", "/account/usage")
async def my_usage(
    request: Request,
    principal: Caller,
    by: GroupBy = "day",
    key_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Response:
    rows = await usage_summary(
        _platform(request).db, by=by, account_id=principal.account_id, key_id=key_id, since=since, until=until
    )
    return json_response(usage_report(by, rows))


@both_prefixes(router, "GET", "/account/ledger")
async def my_ledger(
    request: Request,
    principal: Caller,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, ge=0, le=MAX_SQL_INT),
) -> Response:
    entries = await _platform(request).store.ledger(principal.account_id, limit=limit, before=before)
    return json_response(ListOf(data=[entry_out(e) for e in entries]))


def _store(request: Request) -> AccountStore:
    return platform(request).store


@both_prefixes(router, "GET", "/account/keys")
async def my_keys(request: Request, principal: Caller) -> Response:
    views = await _store(request).keys(principal.account_id)
    now = datetime.now(UTC)
    data = [
        console_key_out(v.key, v.last_used_at)
        for v in views
        if v.key.scope == "user" and not (v.key.web_session and v.key.expires_at and v.key.expires_at < now)
    ]  # sign-in sessions that have expired are of no more use to anyone
    return json_response(ListOf(data=data), nulls=True)


@both_prefixes(router, "POST", "/account/keys")
async def create_my_key(body: ConsoleKeyCreate, request: Request, principal: Caller) -> Response:
    key, full = await console.create_key(_store(request), principal, body.name)
    return json_response(console_new_key(key, full), nulls=True)


@both_prefixes(router, "PATCH", "/account/keys/{key_id}")
async def update_my_key(key_id: str, body: ConsoleKeyUpdate, request: Request, principal: Caller) -> Response:
    key = await console.update_key(_store(request), principal, key_id, name=body.name, disabled=body.disabled)
    return json_response(console_key_out(key), nulls=True)


@both_prefixes(router, "DELETE", "/account/keys/{key_id}")
async def delete_my_key(key_id: str, request: Request, principal: Caller) -> Response:
    await console.delete_key(_store(request), principal, key_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")


@both_prefixes(router, "GET", "/account/prices")
async def prices(request: Request, principal: Caller) -> Response:
    return json_response(ListOf(data=[price_out(p) for p in price_list(_models(request).catalog)]))
