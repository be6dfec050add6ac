"""The All Tools agents a server offers: their catalog entries, the loop, and the tools' shared resources."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace

from ..catalog import AgentSpec, Catalog
from ..config import Settings
from ..files.store import FileStore
from ..images.service import ImageService
from ..serving.service import ChatService
from .browser.fetch import SafeFetcher
from .browser.search import search_providers
from .loop import AgentLoop
from .sandbox.policy import SandboxPolicy
from .sandbox.pool import KernelPool
from .tools.base import AgentTool
from .tools.code_interpreter import CodeInterpreter
from .tools.drawing_tool import DrawingTool
from .tools.http_api import load_document, operations
from .tools.web_browser import WebBrowser

log = logging.getLogger(__name__)


def sandbox_unavailable() -> str | None:
    """Why sandboxed kernels cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the server is not running as root (needed for namespaces and per-kernel uids)"
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    return None


class AgentService:
    def __init__(self, catalog: Catalog, chat: ChatService, tools: dict[str, AgentTool], pool: KernelPool | None):
        self.catalog = catalog
        self.loop = AgentLoop(chat, tools)
        self.pool = pool
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
    ) -> AgentService:
        tools: dict[str, AgentTool] = {}
        pool = None
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
        if catalog.agents:
            reason = sandbox_unavailable()
            if reason is None:
                policy = replace(SandboxPolicy(), timeout=settings.sandbox_timeout)
                hidden = [str(settings.data_dir), str(settings.models_file.resolve())]  # the catalog holds API keys
                pool = KernelPool(policy, settings.data_dir / "sandboxes", warm=settings.sandbox_warm, hidden=hidden)
                await pool.start()
                tools["code_interpreter"] = CodeInterpreter(pool, files)
            else:
                log.warning("code_interpreter is not offered: %s", reason)
            browser = _browser(settings)
            if browser is not None:
                tools["web_browser"] = browser
            if images.available:  # with no image model the tool is not offered
                tools["drawing_tool"] = DrawingTool(images, files)
        service = cls(catalog, chat, tools, pool)
        service.http_fetcher, service.server_tools = http_fetcher, server_tools
        if catalog.agents:
            log.info("All Tools agents: %s (tools: %s)", ", ".join(catalog.agents), ", ".join(tools) or "none")
        return service

    def spec(self, name: str) -> AgentSpec | None:
        return self.catalog.agents.get(name)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.http_fetcher is not None:
            await self.http_fetcher.close()
        browser = self.loop.tools.get("web_browser")
        if isinstance(browser, WebBrowser):
            if browser.provider is not None:
                await browser.provider.close()
            await browser.fetcher.close()


def _browser(settings: Settings) -> WebBrowser | None:
    if not settings.browser_search:
        return None
    fetcher = SafeFetcher(allow=settings.split(settings.browser_allow))
    provider = search_providers.get(settings.browser_search).configured(settings, fetcher)
    return WebBrowser(provider, fetcher)
