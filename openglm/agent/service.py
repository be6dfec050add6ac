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
from .tools import code_interpreter, drawing_tool, retrieval, vision, web_browser  # noqa: F401
from .tools.base import AgentTool, ToolResources, ToolUnavailable, agent_tools
from .tools.http_api import load_document, operations, server_origin

log = logging.getLogger(__name__)


class AgentService:
    def __init__(self, catalog: Catalog, chat: ChatService, tools: dict[str, AgentTool]):
        self.catalog = catalog
        self.loop = AgentLoop(chat, tools)
        self.tools = tools  # the built-ins this server opened, by type
        self.server_tools: dict[str, list[AgentTool]] = {}  # each catalog agent's HTTP tools
        # The address policy of user-defined HTTP tools (GLMs'): public addresses and OPENGLM_HTTP_TOOLS_ALLOW.
        self.user_http_fetcher: SafeFetcher | None = None
        self._fetchers: list[SafeFetcher] = []  # every fetcher opened here, closed with the service

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
        allow = settings.split(settings.http_tools_allow)
        fetchers = [SafeFetcher(allow=allow, allow_setting="OPENGLM_HTTP_TOOLS_ALLOW", deadline=settings.http_deadline)]
        server_tools: dict[str, list[AgentTool]] = {}
        try:
            for agent in catalog.agents.values():
                server_tools[agent.id] = catalog_http_tools(agent, allow, fetchers, settings.http_deadline)
        except BaseException:
            for fetcher in fetchers:
                await fetcher.close()
            raise
        # Always: besides the catalog's agents, any GLM a user builds may enable them.
        resources = ToolResources(settings, images, files, knowledge, chat=chat, fetcher=fetchers[0])
        tools = await open_builtins(resources)
        log.info(
            "All Tools agents: %s (tools: %s)", ", ".join(catalog.agents) or "GLMs only", ", ".join(tools) or "none"
        )
        service = cls(catalog, chat, tools)
        service.server_tools, service.user_http_fetcher, service._fetchers = server_tools, fetchers[0], fetchers
        return service

    def spec(self, name: str) -> AgentSpec | None:
        return self.catalog.agents.get(name)

    async def close(self) -> None:
        for tool in self.tools.values():
            with contextlib.suppress(Exception):
                await tool.close()
        for fetcher in self._fetchers:
            await fetcher.close()


def catalog_http_tools(
    agent: AgentSpec, allow: list[str], fetchers: list[SafeFetcher], deadline: float
) -> list[AgentTool]:
    """A catalog agent's HTTP tools. The operator wrote its documents, so each may call the server it names
    (an internal service too), besides what every HTTP tool may call; the model picks parameters, never the host."""
    if not agent.http_apis:
        return []
    documents = [(load_document(api.openapi), api) for api in agent.http_apis]
    origins = [server_origin(document, api.base_url) for document, api in documents]
    fetcher = SafeFetcher(allow=[*allow, *origins], allow_setting="OPENGLM_HTTP_TOOLS_ALLOW", deadline=deadline)
    fetchers.append(fetcher)
    return [
        op
        for document, api in documents
        for op in operations(document, base_url=api.base_url, auth=api.auth, fetcher=fetcher)
    ]


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
