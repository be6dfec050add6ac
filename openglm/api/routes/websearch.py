"""Zhipu's web search under both prefixes (``runs/websearch.py``): ``POST /web_search`` and ``POST /tools``
(web-search-pro, streamed or not)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.websearch import SearchToolRequest, WebSearchRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, json_response, respond

router = APIRouter(tags=["web search"])


@both_prefixes(router, "POST", "/web_search")
async def web_search(body: WebSearchRequest, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.searches.search(principal, body))


@both_prefixes(router, "POST", "/tools")
async def search_tool(body: SearchToolRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.searches.tool(principal, body))
