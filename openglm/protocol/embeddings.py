"""Wire models of ``/embeddings`` (OpenAI's fields and Zhipu's ``dimensions``, ``request_id``,
``sensitive_word_check``). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .common import RequestId, SensitiveWordCheck


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    # Token-id arrays are OpenAI's too; they are parsed so that the service can refuse them clearly.
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None
    request_id: RequestId | None = None
    sensitive_word_check: SensitiveWordCheck | None = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0  # always 0; zhipuai's strict parser requires the field
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
