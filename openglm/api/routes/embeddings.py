"""``POST /embeddings`` under both prefixes: checked, admitted and metered like a chat call."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.embeddings import EmbeddingRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, compact_json, respond

router = APIRouter(tags=["embeddings"])


@both_prefixes(router, "POST", "/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.embed(principal, body), compact_json)
