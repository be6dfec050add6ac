"""``/batches`` under both prefixes (``batches/service.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.batches import BatchCreate
from ..deps import Batches, Caller
from ._common import both_prefixes, json_response

router = APIRouter(tags=["batches"])


@both_prefixes(router, "POST", "/batches")
async def create_batch(body: BatchCreate, request: Request, principal: Caller, batches: Batches) -> Response:
    return json_response(await batches.create(principal, body, str(request.base_url)), nulls=True)


@both_prefixes(router, "GET", "/batches")
async def list_batches(
    principal: Caller,
    batches: Batches,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = Query(default=None, max_length=64),
) -> Response:
    return json_response(await batches.page(principal, limit, after), nulls=True)


@both_prefixes(router, "GET", "/batches/{batch_id}")
async def get_batch(batch_id: str, principal: Caller, batches: Batches) -> Response:
    return json_response(await batches.get(principal, batch_id), nulls=True)


@both_prefixes(router, "POST", "/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, principal: Caller, batches: Batches) -> Response:
    return json_response(await batches.cancel(principal, batch_id), nulls=True)
