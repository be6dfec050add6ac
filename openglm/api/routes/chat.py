"""``POST /chat/completions`` under both prefixes: a model, a catalog All Tools agent or a GLM (``runs/chat.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.chat import ChatCompletionRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, respond

router = APIRouter(tags=["chat"])


@both_prefixes(router, "POST", "/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.chats.chat_completion(principal, body, str(request.base_url)))
