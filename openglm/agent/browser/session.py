"""A conversation's browser: numbered sources, and the three commands of GLM-4's ``simple_browser``:
``search(query, recency_days=None)``, ``mclick(ids)`` and ``open_url(url)``."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidFieldError
from .extract import extract_isolated
from .fetch import FetchError, SafeFetcher
from .search import SearchProvider

PAGE_CHARS = 3000  # of each opened page, for the model
MAX_LINKS = 15


@dataclass(frozen=True)
class Source:
    id: int
    title: str
    url: str


@dataclass
class BrowseResult:
    outputs: list[dict[str, Any]]  # {"title", "link", "content"} for the client
    observation: str


@dataclass
class BrowserSession:
    provider: SearchProvider | None
    fetcher: SafeFetcher
    sources: dict[int, Source] = field(default_factory=dict)

    def _source(self, title: str, url: str) -> Source:
        for known in self.sources.values():
            if known.url == url:
                return known
        source = Source(len(self.sources), title, url)
        self.sources[source.id] = source
        return source

    async def run(self, command: str) -> BrowseResult:
        name, args, kwargs = parse_command(command)
        if name == "search":
            return await self.search(*args, **kwargs)
        if name == "mclick":
            return await self.mclick(*args, **kwargs)
        return await self.open_url(*args, **kwargs)

    async def search(self, query: str, recency_days: int | None = None) -> BrowseResult:
        if self.provider is None:
            raise InvalidFieldError("no search engine is configured; open_url still works")
        results = await self.provider.search(str(query), recency_days)
        outputs, lines = [], []
        for result in results:
            source = self._source(result.title, result.url)
            outputs.append({"title": result.title, "link": result.url, "content": result.snippet})
            lines.append(f"【{source.id}†{result.title}†{result.url}】\n{result.snippet}")
        return BrowseResult(outputs, "\n\n".join(lines) or f"No results for {query!r}.")

    async def mclick(self, ids: list[int]) -> BrowseResult:
        urls = [self.sources[i].url for i in ids if i in self.sources]
        if not urls:
            raise InvalidFieldError(f"mclick: none of {ids} is a result id; known: {sorted(self.sources)}")
        pages = [await self.open_url(url) for url in urls]
        return BrowseResult([o for p in pages for o in p.outputs], "\n\n".join(p.observation for p in pages))

    async def open_url(self, url: str) -> BrowseResult:
        try:
            page = await self.fetcher.fetch(str(url))
            document = await extract_isolated(page)  # parsing a 2 MB page must not stall the loop
        except FetchError as exc:
            return BrowseResult([], f"[could not open {url}: {exc.message}]")
        source = self._source(document.title, document.url)
        links = "\n".join(f"- {text or link}: {link}" for link, text in document.links[:MAX_LINKS])
        observation = f"【{source.id}†{document.title}】\n{document.text[:PAGE_CHARS]}"
        if links:
            observation += f"\nLinks:\n{links}"
        return BrowseResult([{"title": document.title, "link": document.url, "content": document.text}], observation)


COMMANDS = {"search", "mclick", "open_url"}


def parse_command(command: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``search("x", recency_days=7)`` → ("search", ["x"], {"recency_days": 7}); literals only, nothing runs."""
    try:
        tree = ast.parse(command.strip(), mode="eval").body
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id in COMMANDS):
            raise ValueError
        args = [ast.literal_eval(arg) for arg in tree.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords if kw.arg}
    except (SyntaxError, ValueError):
        raise InvalidFieldError(
            f"not a browser command: {command!r}; use search(query, recency_days=None), mclick([ids]) or open_url(url)"
        ) from None
    return tree.func.id, args, kwargs


_CITATION = re.compile(r"【(\d+)†([^】†]*)(?:†[^】]*)?】")


class CitationLinker:
    """Turns 【id†title】 in streamed answer text into markdown links to the sources, holding back a marker
    until it is complete."""

    def __init__(self, sources: dict[int, Source]):
        self.sources = sources
        self._pending = ""

    def feed(self, text: str) -> str:
        self._pending += text
        cut = self._pending.rfind("【")
        if cut != -1 and "】" not in self._pending[cut:] and len(self._pending) - cut < 300:
            ready, self._pending = self._pending[:cut], self._pending[cut:]
        else:
            ready, self._pending = self._pending, ""
        return self._link(ready)

    def flush(self) -> str:
        ready, self._pending = self._pending, ""
        return self._link(ready)

    def _link(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            source = self.sources.get(int(match.group(1)))
            if source is None:
                return match.group(0)
            return f"[{match.group(2).strip() or source.title}]({source.url})"

        return _CITATION.sub(replace, text)
