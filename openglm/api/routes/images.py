from __future__ import annotations

import base64
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result
from ...files.store import FileStore
from ...images.service import ImageService
from ...serving.usage import UsageBound, new_usage_id
from ..deps import Caller
from ..image_schemas import ImageData, ImageGenerationRequest, ImagesResponse
from ._common import json_response

router = APIRouter(tags=["images"])


@router.post("/v1/images/generations")
@router.post("/api/paas/v4/images/generations")
async def generate_images(body: ImageGenerationRequest, request: Request, principal: Caller) -> Response:
    images: ImageService = request.app.state.images
    spec = images.resolve(body.model)
    bound = UsageBound(images=body.n or 1)
    call = await request.app.state.platform.meter.admit(principal, spec, "images.generations", bound=bound)
    call.bind(new_usage_id("img"), None)

    async def work() -> ImagesResponse:
        files: FileStore = request.app.state.files
        if body.response_format != "b64_json":  # no room for the pictures: refused before any is drawn
            await files.quota.check(principal.account_id, 1)
        generated = await images.generate(spec, body.prompt, body.n or 1, body.size)
        if body.response_format == "b64_json":
            data = [
                ImageData(b64_json=base64.b64encode(g.png).decode(), revised_prompt=g.revised_prompt) for g in generated
            ]
        else:  # a link to the picture, kept as a file of the caller's account
            data = []
            for n, g in enumerate(generated):
                record = await files.create(
                    principal.account_id, "image-generation", f"image-{n}.png", g.png, "image/png"
                )
                data.append(
                    ImageData(url=f"{request.base_url}v1/files/{record.id}/content", revised_prompt=g.revised_prompt)
                )
        call.tally.images = len(generated)  # charged only once the answer is ready to go
        return ImagesResponse(created=int(time.time()), data=data)

    return json_response(await metered_result(call, work()))
