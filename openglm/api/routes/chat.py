from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...serving.responses import collect_chat, stream_chat
from ..schemas import ChatCompletionRequest
from ..sse import sse_response
from ._common import until_disconnect

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions")
@router.post("/api/paas/v4/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    service = request.app.state.chat
    run = await service.start(body)
    if body.stream:
        return sse_response(stream_chat(service, run))
    return await until_disconnect(request, collect_chat(service, run))
