"""Zhipu's async calls (both prefixes): ``POST /async/chat/completions``, ``POST /async/images/generations`` and
``GET /async-result/{id}`` (``runs/deferred.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.chat import ChatCompletionRequest
from ...protocol.images import ImageGenerationRequest
from ..deps import AsyncCallsDep, Caller
from ._common import both_prefixes, json_response

router = APIRouter(tags=["async"])


@both_prefixes(router, "POST", "/async/chat/completions")
async def async_chat(
    body: ChatCompletionRequest, request: Request, principal: Caller, calls: AsyncCallsDep
) -> Response:
    return json_response(await calls.chat(principal, body, str(request.base_url)))


@both_prefixes(router, "POST", "/async/images/generations")
async def async_images(
    body: ImageGenerationRequest, request: Request, principal: Caller, calls: AsyncCallsDep
) -> Response:
    return json_response(await calls.images(principal, body, str(request.base_url)))


@both_prefixes(router, "GET", "/async-result/{task_id}")
async def async_result(task_id: str, principal: Caller, calls: AsyncCallsDep) -> Response:
    return json_response(await calls.result(principal, task_id))
