"""``POST /embeddings`` under both prefixes: checked, admitted and metered like a chat call."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result
from ...embeddings.service import EmbeddingService
from ...protocol.embeddings import EmbeddingRequest
from ...serving.usage import new_usage_id
from ..deps import Caller
from ._common import both_prefixes, compact_json, until_disconnect

router = APIRouter(tags=["embeddings"])


@both_prefixes(router, "POST", "/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request, principal: Caller) -> Response:
    service: EmbeddingService = request.app.state.embeddings
    plan = service.plan(body)
    call = await request.app.state.platform.meter.admit(principal, plan.spec, "embeddings", bound=plan.usage_bound())
    usage_id = new_usage_id("emb")
    call.bind(usage_id, usage_id if body.request_id is None else body.request_id)
    return await until_disconnect(request, metered_result(call, service.run(plan, call.tally)), compact_json)
