"""``web_browser``: search, open and read web pages, citing them (``agent/browser``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..browser.fetch import SafeFetcher
from ..browser.search import SearchProvider
from ..browser.session import BrowserSession, CitationLinker
from .base import AgentTool, ToolContext, ToolResult, agent_tools

MAX_SESSIONS = 512


@agent_tools.register("web_browser")
class WebBrowser(AgentTool):
    type = "web_browser"
    function_name = "simple_browser"
    input_argument = "command"

    def __init__(self, provider: SearchProvider | None, fetcher: SafeFetcher):
        self.provider = provider
        self.fetcher = fetcher
        self._sessions: OrderedDict[str, BrowserSession] = OrderedDict()

    def definition(self, context: ToolContext) -> dict[str, Any]:
        return {
            "name": self.function_name,
            "description": (
                "Browse the web. The command is one of: search(query: str, recency_days: int | None = None) "
                "to search; mclick(ids: list[int]) to open search results by their ids; open_url(url: str) to "
                "open a page. Cite what you use as 【id†title】."
            ),
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": 'e.g. search("Beijing weather")'}},
                "required": ["command"],
            },
        }

    def session(self, conversation: str) -> BrowserSession:
        session = self._sessions.get(conversation)
        if session is None:
            session = self._sessions[conversation] = BrowserSession(self.provider, self.fetcher)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(conversation)
        return session

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        result = await self.session(context.conversation).run(str(arguments.get("command", "")))
        return ToolResult(outputs=result.outputs, observation=result.observation)

    def text_filter(self, conversation: str) -> CitationLinker:
        return CitationLinker(self.session(conversation).sources)
