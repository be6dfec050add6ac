"""Wire models of Zhipu's ``POST /tokenizer``: a chat request's messages (and tools) in, the prompt tokens the
model would read out. No logic here."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .chat import CharacterMeta, ChatMessage, ToolDefinition
from .common import RequestId, WireModel


class TokenizerRequest(WireModel):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDefinition] | None = Field(default=None, max_length=128)
    meta: CharacterMeta | None = None
    request_id: RequestId | None = None
    user_id: str | None = None


class TokenizerUsage(BaseModel):
    prompt_tokens: int


class TokenizerResponse(BaseModel):
    id: str
    created: int
    request_id: str
    model: str
    usage: TokenizerUsage
