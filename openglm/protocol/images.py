"""Wire models of ``/images/generations`` (OpenAI's and Zhipu's fields). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import RequestId


class ImageGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str = Field(min_length=1, max_length=4000)
    n: int | None = Field(default=None, ge=1, le=4)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    quality: str | None = None
    style: str | None = None
    user: str | None = None
    request_id: RequestId | None = None


class ImageData(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
