from __future__ import annotations

import base64
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result
from ...images.service import ImageService, Picture
from ...protocol.images import ImageData, ImageGenerationRequest, ImagesResponse
from ...serving.usage import UsageBound, new_usage_id
from ..deps import Caller
from ._common import json_response

router = APIRouter(tags=["images"])


@router.post("/v1/images/generations")
@router.post("/api/paas/v4/images/generations")
async def generate_images(body: ImageGenerationRequest, request: Request, principal: Caller) -> Response:
    images: ImageService = request.app.state.images
    spec = images.resolve(body.model)
    bound = UsageBound(images=body.n or 1)
    call = await request.app.state.platform.meter.admit(principal, spec, "images.generations", bound=bound)
    call.bind(new_usage_id("img"), body.request_id)

    async def work() -> ImagesResponse:
        inline = body.response_format == "b64_json"
        pictures = await images.draw(
            principal.account_id,
            spec,
            body.prompt,
            n=body.n or 1,
            size=body.size,
            files=None if inline else request.app.state.files,
            tally=call.tally,
        )
        return ImagesResponse(created=int(time.time()), data=[image_data(p, request) for p in pictures])

    return json_response(await metered_result(call, work()))


def image_data(picture: Picture, request: Request) -> ImageData:
    revised = picture.image.revised_prompt
    if picture.file is None:
        return ImageData(b64_json=base64.b64encode(picture.image.png).decode(), revised_prompt=revised)
    return ImageData(url=f"{request.base_url}v1/files/{picture.file.id}/content", revised_prompt=revised)
