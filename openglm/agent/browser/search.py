"""Search providers, one registry: ``searxng`` (a SearxNG instance by URL) and ``local`` (an index of
configured sites, crawled through the safe fetcher and searched with SQLite FTS5's BM25)."""

from __future__ import annotations

import abc
import asyncio
import sqlite3
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from ...config import Settings
from ...registry import Registry
from .extract import Document, extract_isolated
from .fetch import FetchError, SafeFetcher


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    date: str | None = None


class SearchProvider(abc.ABC):
    @classmethod
    @abc.abstractmethod
    def configured(cls, settings: Settings, fetcher: SafeFetcher) -> SearchProvider:
        """The provider as the settings describe it (``OPENGLM_BROWSER_*``)."""

    @abc.abstractmethod
    async def search(self, query: str, recency_days: int | None = None, limit: int = 8) -> list[SearchResult]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


search_providers: Registry[type[SearchProvider]] = Registry("search provider")
SEARXNG_RANGES = ((1, "day"), (7, "week"), (31, "month"), (366, "year"))


@search_providers.register("searxng")
class SearxngProvider(SearchProvider):
    """A SearxNG instance the operator runs (its JSON format must be enabled in its settings)."""

    @classmethod
    def configured(cls, settings: Settings, fetcher: SafeFetcher) -> SearchProvider:
        return cls(settings.browser_searxng_url)

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout)

    async def search(self, query: str, recency_days: int | None = None, limit: int = 8) -> list[SearchResult]:
        params = {"q": query, "format": "json"}
        if recency_days:
            params["time_range"] = next((name for days, name in SEARXNG_RANGES if recency_days <= days), "year")
        try:
            response = await self._client.get(f"{self.url}/search", params=params)
            response.raise_for_status()
            results = response.json().get("results", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise FetchError(f"search engine unavailable: {exc}") from None
        return [
            SearchResult(r.get("title") or r["url"], r["url"], r.get("content", ""), r.get("publishedDate"))
            for r in results[:limit]
            if r.get("url")
        ]

    async def close(self) -> None:
        await self._client.aclose()


@search_providers.register("local")
class LocalIndexProvider(SearchProvider):
    """Crawls the configured sites once (same host, breadth first, up to ``max_pages``) and searches them."""

    @classmethod
    def configured(cls, settings: Settings, fetcher: SafeFetcher) -> SearchProvider:
        return cls(settings.split(settings.browser_sites), fetcher)

    def __init__(self, sites: list[str], fetcher: SafeFetcher, max_pages: int = 200):
        self.sites = sites
        self.fetcher = fetcher
        self.max_pages = max_pages
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE pages USING fts5(title, text, url UNINDEXED, date UNINDEXED)")
        self._crawled: asyncio.Task[None] | None = None

    async def search(self, query: str, recency_days: int | None = None, limit: int = 8) -> list[SearchResult]:
        if self._crawled is None:
            self._crawled = asyncio.create_task(self._crawl())
        await asyncio.shield(self._crawled)
        terms = " OR ".join(f'"{word}"' for word in query.replace('"', " ").split() if word)
        if not terms:
            return []
        rows = self._db.execute(
            "SELECT title, url, snippet(pages, 1, '', '', ' … ', 24), date FROM pages WHERE pages MATCH ? "
            "ORDER BY bm25(pages) LIMIT ?",
            (terms, limit * 3),
        ).fetchall()
        results = [SearchResult(title, url, snippet, date) for title, url, snippet, date in rows]
        if recency_days:
            cutoff = (datetime.now(UTC) - timedelta(days=recency_days)).date().isoformat()
            results = [r for r in results if r.date is None or r.date >= cutoff]
        return results[:limit]

    async def _crawl(self) -> None:
        queue = deque(self.sites)
        seen = set(self.sites)
        hosts = {urlsplit(site).netloc for site in self.sites}
        indexed = 0
        while queue and indexed < self.max_pages:
            url = queue.popleft()
            try:
                document = await extract_isolated(await self.fetcher.fetch(url))
            except FetchError:
                continue
            self._index(document)
            indexed += 1
            for link, _ in document.links:
                if urlsplit(link).netloc in hosts and link not in seen:
                    seen.add(link)
                    queue.append(link)

    def _index(self, document: Document) -> None:
        self._db.execute(
            "INSERT INTO pages (title, text, url, date) VALUES (?, ?, ?, ?)",
            (document.title, document.text, document.url, document.date),
        )

    async def close(self) -> None:
        self._db.close()
