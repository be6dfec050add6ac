"""The All Tools agents a server offers: their catalog entries, the loop, and the tools' shared resources."""

from __future__ import annotations

import contextlib
import logging

from ..catalog import AgentSpec, Catalog
from ..config import Settings
from ..files.store import FileStore
from ..images.service import ImageService
from ..knowledge.service import KnowledgeService
from ..serving.service import ChatService
from .browser.fetch import SafeFetcher
from .loop import AgentLoop

# The built-in tools register themselves in agent_tools when their modules are imported.
from .tools import code_interpreter, drawing_tool, retrieval, web_browser  # noqa: F401
from .tools.base import AgentTool, ToolResources, ToolUnavailable, agent_tools
from .tools.http_api import load_document, operations

log = logging.getLogger(__name__)


class AgentService:
    def __init__(self, catalog: Catalog, chat: ChatService, tools: dict[str, AgentTool]):
        self.catalog = catalog
        self.loop = AgentLoop(chat, tools)
        self.tools = tools  # the built-ins this server opened, by type
        self.server_tools: dict[str, list[AgentTool]] = {}  # each agent's HTTP tools
        self.http_fetcher: SafeFetcher | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        catalog: Catalog,
        chat: ChatService,
        images: ImageService,
        files: FileStore | None = None,
        knowledge: KnowledgeService | None = None,
    ) -> AgentService:
        # The agents' HTTP tools first: a bad OpenAPI document fails the start before any kernel is booted.
        http_fetcher = SafeFetcher(allow=settings.split(settings.browser_allow))
        server_tools: dict[str, list[AgentTool]] = {
            agent.id: [
                op
                for api in agent.http_apis
                for op in operations(
                    load_document(api.openapi), base_url=api.base_url, auth=api.auth, fetcher=http_fetcher
                )
            ]
            for agent in catalog.agents.values()
        }
        # Always: besides the catalog's agents, any GLM a user builds may enable them.
        tools = await open_builtins(ToolResources(settings, images, files, knowledge))
        log.info(
            "All Tools agents: %s (tools: %s)", ", ".join(catalog.agents) or "GLMs only", ", ".join(tools) or "none"
        )
        service = cls(catalog, chat, tools)
        service.http_fetcher, service.server_tools = http_fetcher, server_tools
        return service

    def spec(self, name: str) -> AgentSpec | None:
        return self.catalog.agents.get(name)

    async def close(self) -> None:
        for tool in self.tools.values():
            with contextlib.suppress(Exception):
                await tool.close()
        if self.http_fetcher is not None:
            await self.http_fetcher.close()


async def open_builtins(resources: ToolResources) -> dict[str, AgentTool]:
    """Every registered built-in this server can offer, opened; the others are logged with the reason."""
    tools: dict[str, AgentTool] = {}
    try:
        for name in agent_tools.names():
            try:
                tools[name] = await agent_tools.get(name).open(resources)
            except ToolUnavailable as reason:
                log.warning("%s is not offered: %s", name, reason)
    except BaseException:
        for tool in tools.values():
            await tool.close()
        raise
    return tools
