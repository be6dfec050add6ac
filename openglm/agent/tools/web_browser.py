"""``web_browser``: search, open and read web pages, citing them (``agent/browser``)."""

from __future__ import annotations

from typing import Any

from ..browser.fetch import SafeFetcher
from ..browser.search import SearchProvider, search_providers
from ..browser.session import BrowserSession, CitationLinker
from ..state import ConversationState
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools


@agent_tools.register("web_browser")
class WebBrowser(AgentTool):
    type = "web_browser"
    function_name = "simple_browser"
    input_argument = "command"

    def __init__(self, provider: SearchProvider | None, fetcher: SafeFetcher):
        self.provider = provider
        self.fetcher = fetcher
        self._sessions: ConversationState[BrowserSession] = ConversationState()

    @classmethod
    async def open(cls, resources: ToolResources) -> WebBrowser:
        settings = resources.settings
        if not settings.browser_search:
            raise ToolUnavailable("no search provider is configured (OPENGLM_BROWSER_SEARCH)")
        fetcher = SafeFetcher(allow=settings.split(settings.browser_allow), deadline=settings.http_deadline)
        return cls(search_providers.get(settings.browser_search).configured(settings, fetcher), fetcher)

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()
        await self.fetcher.close()

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
        return self._sessions.setdefault(conversation, lambda: BrowserSession(self.provider, self.fetcher))

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        result = await self.session(context.conversation).run(str(arguments.get("command", "")))
        return ToolResult(outputs=result.outputs, observation=result.observation)

    def text_filter(self, conversation: str) -> CitationLinker:
        return CitationLinker(self.session(conversation).sources)
