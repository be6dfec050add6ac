"""``POST /completions`` under both prefixes: legacy text completions."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.chat import CompletionRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, respond

router = APIRouter(tags=["completions"])


@both_prefixes(router, "POST", "/completions")
async def completions(body: CompletionRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.chats.completion(principal, body))
