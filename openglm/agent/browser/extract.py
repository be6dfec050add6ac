"""Readable text and a title out of a fetched page (trafilatura), with the page's links kept for the model.

A page is hostile input: everything here is linear in its size (the title and links come from lxml's parse tree;
regular expressions over raw HTML with ``[^>]*`` and ``.*?`` went quadratic on a page of repeated ``<a `` or
``<title>``), and the browser runs ``extract`` in a worker process with a deadline (``untrusted.pool``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from ...untrusted.pool import WorkLimitError, shared_pool
from ...untrusted.transfer import transferable
from .fetch import FetchError, Page

MAX_TEXT = 20_000
MAX_LINKS = 500  # the session shows the model 15; the rest only cost memory


@transferable
@dataclass(frozen=True)
class Document:
    url: str
    title: str
    text: str
    links: list[tuple[str, str]]  # (absolute url, anchor text)
    date: str | None = None  # ISO date the page says it was published, when it says


async def extract_isolated(page: Page) -> Document:
    """``extract`` in a worker process, off the event loop; a page that takes longer than the parse deadline or
    more memory than a worker has is a FetchError (the model is told the page could not be opened)."""
    try:
        return await shared_pool().run(extract, page, what=f"the page {page.url}")
    except WorkLimitError as exc:
        raise FetchError(exc.message) from None


def extract(page: Page) -> Document:
    import trafilatura

    html = page.body.decode("utf-8", errors="replace")
    if page.content_type not in ("text/html", "application/xhtml+xml"):
        return Document(page.url, page.url, html[:MAX_TEXT], [])
    tree = _tree(html)
    text = trafilatura.extract(html, url=page.url, include_tables=True, favor_recall=True) or ""
    metadata = trafilatura.extract_metadata(html, default_url=page.url)
    title = (metadata.title if metadata and metadata.title else None) or _title(tree) or page.url
    date = metadata.date if metadata else None
    return Document(page.url, title, text[:MAX_TEXT], _links(tree, page.url), date)


def _tree(html: str) -> Any:
    from lxml import etree
    from lxml import html as lxml_html

    try:
        return lxml_html.document_fromstring(html)
    except (etree.ParserError, ValueError):  # an empty or unparseable page: no title, no links
        return None


def _title(tree: Any) -> str | None:
    if tree is None:
        return None
    title = tree.findtext(".//title")
    return " ".join(title.split()) or None if title else None


def _links(tree: Any, base: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    if tree is None:
        return []
    for anchor in tree.iter("a"):
        href = (anchor.get("href") or "").split("#")[0].strip()
        if not href:
            continue
        url = urljoin(base, href)
        if url.startswith(("http://", "https://")) and url not in seen:
            seen[url] = " ".join(anchor.text_content().split())
            if len(seen) >= MAX_LINKS:
                break
    return list(seen.items())
