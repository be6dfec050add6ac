from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...serving.completions import collect_completion, completion_chunks, start_completion
from ..schemas import CompletionRequest
from ..sse import sse_response
from ._common import until_disconnect

router = APIRouter(tags=["completions"])


@router.post("/v1/completions")
@router.post("/api/paas/v4/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    run = await start_completion(request.app.state.models, body)
    if body.stream:
        return sse_response(completion_chunks(run))
    return await until_disconnect(request, collect_completion(run))
