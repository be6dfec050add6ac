"""``WebSearch``: one search as Zhipu's parameters describe it — the query, how many results, a domain to keep to,
how recent, and how much of each page (``medium``: the search engine's snippet; ``high``: the page itself, opened
through the safe fetcher and extracted in the untrusted pool, up to ``HIGH_CHARS``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ..agent.browser.extract import extract_isolated
from ..agent.browser.fetch import FetchError, SafeFetcher
from ..agent.browser.search import SearchProvider, SearchResult
from ..errors import InvalidFieldError, MissingFieldError, ServiceUnavailableError, UnsupportedError

# Zhipu's engines; this server searches with its one configured provider whichever is named (recorded).
ENGINES = ("search_std", "search_pro", "search_pro_sogou", "search_pro_quark", "search_pro_jina", "search_pro_bing")
RECENCY_DAYS = {"oneDay": 1, "oneWeek": 7, "oneMonth": 31, "oneYear": 366, "noLimit": None}
MAX_COUNT = 50
MAX_QUERY_CHARS = 1000
HIGH_CHARS = 4000  # of each page's text, with content_size "high"
MEDIUM_CHARS = 600
PAGES_AT_ONCE = 4
ContentSize = Literal["medium", "high"]


@dataclass(frozen=True)
class SearchOptions:
    query: str
    count: int = 10
    domain: str | None = None
    recency_days: int | None = None
    content_size: ContentSize = "medium"
    engine: str = "search_std"


@dataclass(frozen=True)
class WebResult:
    title: str
    link: str
    content: str
    media: str  # the site's host
    refer: str  # ref_1, ref_2, ...: how an answer cites it
    publish_date: str


def search_options(
    query: object,
    *,
    count: object = None,
    domain: object = None,
    recency: object = None,
    content_size: object = None,
    engine: object = None,
    default_count: int = 10,
) -> SearchOptions:
    """Zhipu's parameters, checked: a clear 400 naming the field, never a silent default for a wrong value."""
    if not isinstance(query, str) or not query.strip():
        raise MissingFieldError("search_query is required: what to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidFieldError(f"search_query: at most {MAX_QUERY_CHARS} characters")
    if count is None:
        count = default_count
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise InvalidFieldError(f"count: a whole number from 1 to {MAX_COUNT}")
    if domain is not None and (not isinstance(domain, str) or "/" in domain or not domain.strip(". ")):
        raise InvalidFieldError("search_domain_filter: a domain such as example.com")
    if recency is not None and recency not in RECENCY_DAYS:
        raise InvalidFieldError(f"search_recency_filter: one of {', '.join(RECENCY_DAYS)}")
    if content_size is not None and content_size not in ("medium", "high"):
        raise InvalidFieldError("content_size: medium or high")
    if engine is not None and engine not in ENGINES:
        raise InvalidFieldError(f"search_engine: one of {', '.join(ENGINES)}")
    return SearchOptions(
        query=query.strip(),
        count=count,
        domain=domain.strip(". ").lower() if isinstance(domain, str) else None,
        recency_days=RECENCY_DAYS[recency] if isinstance(recency, str) else None,
        content_size="high" if content_size == "high" else "medium",
        engine=engine if isinstance(engine, str) else "search_std",
    )


class WebSearch:
    def __init__(self, provider: SearchProvider | None, fetcher: SafeFetcher | None):
        self.provider = provider
        self.fetcher = fetcher

    @property
    def available(self) -> bool:
        return self.provider is not None

    async def search(self, options: SearchOptions) -> list[WebResult]:
        if self.provider is None:
            raise UnsupportedError(
                "web search is not configured on this server: its operator sets OPENGLM_BROWSER_SEARCH "
                "(searxng with OPENGLM_BROWSER_SEARXNG_URL, or local with OPENGLM_BROWSER_SITES)"
            )
        query = options.query if options.domain is None else f"{options.query} site:{options.domain}"
        try:
            # A domain filter is applied here as well: not every engine knows site:, and the local index ignores it.
            found = await self.provider.search(query, options.recency_days, limit=options.count * 3)
        except FetchError as exc:
            raise ServiceUnavailableError(f"the search engine did not answer: {exc.message}") from None
        if options.domain is not None:
            found = [r for r in found if _within(r.url, options.domain)]
            if not found:  # an engine that took site: literally finds nothing: ask again without it
                found = [
                    r
                    for r in await self.provider.search(options.query, options.recency_days, limit=options.count * 3)
                    if _within(r.url, options.domain)
                ]
        found = found[: options.count]
        contents = await self._contents(found, options.content_size)
        return [
            WebResult(
                title=result.title,
                link=result.url,
                content=content,
                media=urlsplit(result.url).hostname or "",
                refer=f"ref_{i}",
                publish_date=result.date or "",
            )
            for i, (result, content) in enumerate(zip(found, contents, strict=True), start=1)
        ]

    async def _contents(self, found: list[SearchResult], size: ContentSize) -> list[str]:
        if size == "medium" or self.fetcher is None:
            return [r.snippet[:MEDIUM_CHARS] for r in found]
        gate = asyncio.Semaphore(PAGES_AT_ONCE)

        async def page(result: SearchResult) -> str:
            assert self.fetcher is not None
            async with gate:
                try:
                    document = await extract_isolated(await self.fetcher.fetch(result.url))
                except FetchError:
                    return result.snippet[:MEDIUM_CHARS]  # a page that cannot be opened: its snippet
            return document.text[:HIGH_CHARS] or result.snippet[:MEDIUM_CHARS]

        return list(await asyncio.gather(*(page(r) for r in found)))


def _within(url: str, domain: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == domain or host.endswith(f".{domain}")
