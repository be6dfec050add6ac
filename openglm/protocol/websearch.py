"""Wire models of Zhipu's web search: ``POST /web_search``, ``POST /tools`` (web-search-pro, streamed or not), and
the search results a chat answer carries (``web_search``). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .chat import ChatMessage, WebSearchItem
from .common import RequestId, SensitiveWordCheck, WireModel


class WebSearchRequest(WireModel):
    search_query: str | None = None
    search_engine: str | None = None
    count: int | None = None
    search_domain_filter: str | None = None
    search_recency_filter: str | None = None
    content_size: str | None = None
    search_intent: bool | None = None
    location: str | None = None
    request_id: RequestId | None = None
    user_id: str | None = None
    sensitive_word_check: SensitiveWordCheck | None = None


class SearchIntentItem(BaseModel):
    query: str
    intent: str
    keywords: str


class WebSearchResponse(BaseModel):
    id: str
    created: int
    request_id: str
    search_intent: list[SearchIntentItem]
    search_result: list[WebSearchItem]


class SearchToolRequest(WireModel):
    """``POST /tools``: web-search-pro."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    scope: str | None = None
    location: str | None = None
    recent_days: int | None = Field(default=None, ge=1, le=3650)
    request_id: RequestId | None = None


class IndexedIntent(SearchIntentItem):
    index: int = 0


class IndexedResult(BaseModel):
    index: int = 0
    title: str
    link: str
    content: str
    icon: str = ""
    media: str
    refer: str


class SearchToolCall(BaseModel):
    id: str
    index: int | None = None
    type: Literal["search_intent", "search_result"]
    search_intent: list[IndexedIntent] | None = None
    search_result: list[IndexedResult] | None = None


class SearchToolMessage(BaseModel):
    role: Literal["tool"] = "tool"
    tool_calls: list[SearchToolCall]


class SearchToolChoice(BaseModel):
    index: int = 0
    finish_reason: str = "stop"
    message: SearchToolMessage


class SearchToolResponse(BaseModel):
    id: str
    created: int
    request_id: str
    model: str
    choices: list[SearchToolChoice]


class SearchToolDelta(BaseModel):
    role: Literal["tool"] | None = None
    tool_calls: list[SearchToolCall] | None = None


class SearchToolChunkChoice(BaseModel):
    index: int = 0
    delta: SearchToolDelta
    finish_reason: str | None = None


class SearchToolChunk(BaseModel):
    id: str
    created: int
    model: str
    choices: list[SearchToolChunkChoice]
