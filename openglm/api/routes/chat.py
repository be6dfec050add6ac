from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result, metered_stream
from ...serving.responses import collect_chat, stream_chat
from ..deps import Caller
from ..schemas import ChatCompletionRequest
from ..sse import sse_response
from ._common import admit, closer, until_disconnect

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions")
@router.post("/api/paas/v4/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, principal: Caller) -> Response:
    service = request.app.state.chat
    plan = service.plan(body)
    call = await admit(request, principal, plan.served, "chat.completions", plan.id, plan.request_id)
    run = await call.guard(service.submit(plan))
    call.tally.prompt_tokens = run.prompt_tokens
    if body.stream:
        stream = metered_stream(call, stream_chat(service, run, call.tally))
        return sse_response(stream, on_close=closer(run, call))
    return await until_disconnect(request, metered_result(call, collect_chat(service, run, call.tally)))
