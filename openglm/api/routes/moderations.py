"""Content safety: ``POST /moderations`` (both prefixes, OpenAI's and Zhipu's answer in one body) and the recorded
hits — an account's own (``/account/moderation/hits``) and every account's for the operator
(``/admin/moderation/hits``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from ...protocol.moderations import ModerationRequest
from ..deps import Caller, Runs, admin
from ._common import both_prefixes, json_response

router = APIRouter(tags=["moderations"])

Stage = Literal["input", "output", "moderations"]


@both_prefixes(router, "POST", "/moderations")
async def create_moderation(body: ModerationRequest, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.moderate(principal, body))


@both_prefixes(router, "GET", "/account/moderation/hits")
async def my_hits(
    principal: Caller,
    runs: Runs,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = Query(default=None, max_length=40),
    category: str | None = Query(default=None, max_length=64),
    stage: Stage | None = None,
) -> Response:
    page = await runs.moderation.hits(principal.account_id, limit=limit, after=after, category=category, stage=stage)
    return json_response(page, nulls=True)


@router.get("/admin/moderation/hits", dependencies=[Depends(admin)])
async def all_hits(
    runs: Runs,
    account: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=50, ge=1, le=500),
    after: str | None = Query(default=None, max_length=40),
    category: str | None = Query(default=None, max_length=64),
    stage: Stage | None = None,
) -> Response:
    page = await runs.moderation.hits(account, limit=limit, after=after, category=category, stage=stage)
    return json_response(page, nulls=True)
