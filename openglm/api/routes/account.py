"""The caller's own account: balance, usage and ledger (both path prefixes)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.usage import GroupBy, usage_summary
from ..account_schemas import ListOf
from ..account_views import account_out, entry_out, usage_report
from ..deps import Caller
from ._common import both_prefixes, json_response

router = APIRouter(tags=["account"])


@both_prefixes(router, "GET", "/account")
async def my_account(request: Request, principal: Caller) -> Response:
    return json_response(account_out(await request.app.state.platform.store.account_view(principal.account_id)))


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
        request.app.state.platform.db, by=by, account_id=principal.account_id, key_id=key_id, since=since, until=until
    )
    return json_response(usage_report(by, rows))


@both_prefixes(router, "GET", "/account/ledger")
async def my_ledger(
    request: Request,
    principal: Caller,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = None,
) -> Response:
    entries = await request.app.state.platform.store.ledger(principal.account_id, limit=limit, before=before)
    return json_response(ListOf(data=[entry_out(e) for e in entries]))
