"""Zhipu's web search endpoints on the run service: ``POST /web_search`` (results for a query) and ``POST /tools``
with ``web-search-pro`` (the last user message searched, answered as ``search_intent`` and ``search_result`` tool
calls, streamed or not). The query passes the input checkers first, like any request's text. Not billed: no model
runs (an operator's search engine has its own costs; they are not metered here)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

from ..accounts.auth import Principal
from ..errors import InvalidFieldError, ModelNotFoundError
from ..protocol.common import SensitiveWordCheck
from ..protocol.websearch import (
    IndexedIntent,
    IndexedResult,
    SearchIntentItem,
    SearchToolCall,
    SearchToolChoice,
    SearchToolChunk,
    SearchToolChunkChoice,
    SearchToolDelta,
    SearchToolMessage,
    SearchToolRequest,
    SearchToolResponse,
    WebSearchRequest,
    WebSearchResponse,
)
from ..safety.service import Subject
from ..serving.messages import last_user_text
from ..websearch.chat import items
from ..websearch.search import SearchOptions, WebResult, WebSearch, search_options
from .moderation import ModerationRuns
from .outcome import Collected, Outcome, Streamed

SEARCH_TOOL_MODELS = ("web-search-pro",)
INTENT = "SEARCH_ALL"


class WebSearchRuns:
    def __init__(self, web: WebSearch, moderation: ModerationRuns):
        self.web = web
        self.moderation = moderation

    async def search(self, principal: Principal, body: WebSearchRequest) -> WebSearchResponse:
        options = search_options(
            body.search_query,
            count=body.count,
            domain=body.search_domain_filter,
            recency=body.search_recency_filter,
            content_size=body.content_size,
            engine=body.search_engine,
        )
        search_id = new_search_id()
        request_id = str(body.request_id) if body.request_id is not None else search_id
        await self._check(principal, options, "web_search", request_id, body.sensitive_word_check)
        results = await self.web.search(options)
        return WebSearchResponse(
            id=search_id,
            created=int(time.time()),
            request_id=request_id,
            search_intent=[SearchIntentItem(query=options.query, intent=INTENT, keywords=options.query)],
            search_result=items(results),
        )

    async def tool(self, principal: Principal, body: SearchToolRequest) -> Outcome:
        if body.model not in SEARCH_TOOL_MODELS:
            raise ModelNotFoundError(f"模型不存在 / {body.model!r} is not a tool here; tools: web-search-pro")
        query = last_user_text(body.messages)
        recency = None if body.recent_days is None else _recency_name(body.recent_days)
        options = search_options(query, count=10, domain=_scope(body.scope), recency=recency)
        if body.recent_days is not None:
            options = SearchOptions(**{**vars(options), "recency_days": body.recent_days})
        search_id = new_search_id()
        request_id = str(body.request_id) if body.request_id is not None else search_id
        await self._check(principal, options, "tools", request_id, None)
        results = await self.web.search(options)
        calls = tool_calls(search_id, options, results)
        if not body.stream:
            message = SearchToolMessage(tool_calls=calls)
            answer = SearchToolResponse(
                id=search_id,
                created=int(time.time()),
                request_id=request_id,
                model=body.model,
                choices=[SearchToolChoice(message=message)],
            )
            return Collected(_ready(answer))
        return Streamed(tool_chunks(search_id, body.model, calls), lambda: None)

    async def _check(
        self,
        principal: Principal,
        options: SearchOptions,
        endpoint: str,
        request_id: str,
        check: SensitiveWordCheck | None,
    ) -> None:
        policy = self.moderation.policy(principal, None, check)
        subject = Subject(principal.account_id, principal.key_id, options.engine, endpoint, request_id)
        await self.moderation.check_input(principal, policy, [options.query], subject)


def tool_calls(search_id: str, options: SearchOptions, results: list[WebResult]) -> list[SearchToolCall]:
    intent = IndexedIntent(query=options.query, intent=INTENT, keywords=options.query)
    found = [
        IndexedResult(title=r.title, link=r.link, content=r.content, media=r.media, refer=r.refer) for r in results
    ]
    return [
        SearchToolCall(id=f"{search_id}-intent", index=0, type="search_intent", search_intent=[intent]),
        SearchToolCall(id=f"{search_id}-result", index=1, type="search_result", search_result=found),
    ]


async def tool_chunks(search_id: str, model: str, calls: list[SearchToolCall]) -> AsyncIterator[SearchToolChunk]:
    """Each tool call in a chunk of its own, then one that finishes."""
    created = int(time.time())
    for n, call in enumerate(calls):
        delta = SearchToolDelta(role="tool" if n == 0 else None, tool_calls=[call])
        yield SearchToolChunk(id=search_id, created=created, model=model, choices=[SearchToolChunkChoice(delta=delta)])
    done = SearchToolChunkChoice(delta=SearchToolDelta(), finish_reason="stop")
    yield SearchToolChunk(id=search_id, created=created, model=model, choices=[done])


async def _ready(answer: SearchToolResponse) -> SearchToolResponse:
    return answer


def new_search_id() -> str:
    return f"search-{secrets.token_hex(12)}"


def _recency_name(days: int) -> str:
    """The narrowest of Zhipu's recency names that covers ``days`` (the exact days are searched with)."""
    for name, limit in (("oneDay", 1), ("oneWeek", 7), ("oneMonth", 31), ("oneYear", 366)):
        if days <= limit:
            return name
    return "noLimit"


def _scope(scope: str | None) -> str | None:
    """web-search-pro's ``scope``: the whole web (absent, "全网", "all"), or a domain to keep to."""
    if scope is None or scope.strip().lower() in ("", "全网", "all", "web"):
        return None
    if "." not in scope or "/" in scope or " " in scope.strip():
        raise InvalidFieldError("scope: the whole web (全网) or a domain such as example.com")
    return scope.strip()
