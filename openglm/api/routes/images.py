"""``POST /images/generations`` under both prefixes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.images import ImageGenerationRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, json_response

router = APIRouter(tags=["images"])


@both_prefixes(router, "POST", "/images/generations")
async def generate_images(body: ImageGenerationRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    # Awaited whole, not cancelled when the client leaves: drawn pictures are kept as files and billed.
    return json_response(await (await runs.draw(principal, body, str(request.base_url))).result)
