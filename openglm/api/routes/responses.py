"""OpenAI's Responses API (``/v1/responses``; ``runs/responses.py``): create (collected or streamed events),
retrieve, delete, and a stored response's input items."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.responses import ResponseCreate
from ..deps import Caller, Runs
from ._common import json_response, respond

router = APIRouter(tags=["responses"])


@router.post("/v1/responses")
async def create_response(body: ResponseCreate, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.responses.create(principal, body, str(request.base_url)))


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.responses.get(principal, response_id), nulls=True)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.responses.delete(principal, response_id))


@router.get("/v1/responses/{response_id}/input_items")
async def input_items(response_id: str, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.responses.input_items(principal, response_id))
