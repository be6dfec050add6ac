"""Readable text and a title out of a fetched page (trafilatura), with the page's links kept for the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

from .fetch import Page

MAX_TEXT = 20_000
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<a\s[^>]*href=[\"']([^\"'#]+)[\"'][^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Document:
    url: str
    title: str
    text: str
    links: list[tuple[str, str]]  # (absolute url, anchor text)
    date: str | None = None  # ISO date the page says it was published, when it says


def extract(page: Page) -> Document:
    import trafilatura

    html = page.body.decode("utf-8", errors="replace")
    if page.content_type not in ("text/html", "application/xhtml+xml"):
        return Document(page.url, page.url, html[:MAX_TEXT], [])
    text = trafilatura.extract(html, url=page.url, include_tables=True, favor_recall=True) or ""
    metadata = trafilatura.extract_metadata(html, default_url=page.url)
    title = (metadata.title if metadata and metadata.title else None) or _title(html) or page.url
    date = metadata.date if metadata else None
    return Document(page.url, title, text[:MAX_TEXT], _links(html, page.url), date)


def _title(html: str) -> str | None:
    match = _TITLE.search(html)
    return unescape(match.group(1)).strip() if match else None


def _links(html: str, base: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for href, anchor in _LINK.findall(html):
        url = urljoin(base, unescape(href))
        if url.startswith(("http://", "https://")) and url not in seen:
            seen[url] = " ".join(unescape(_TAGS.sub("", anchor)).split())
    return list(seen.items())
