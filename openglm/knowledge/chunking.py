"""``chunk``: a parsed document to chunks that fit the embedding model, each pointing at its exact source span.

The document is walked section by section (a section is what lies under one heading path). Text sections are cut
by ``splitting`` with overlap inside the section only; tables are cut by rows, and every table chunk carries the
table's header in its ``embed_text``. Chunks never span two sections, except that small whole sections under the
same top-level heading are joined when together they still fit (``merge_sections``).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, replace
from typing import Literal

from .document import ParsedDocument
from .options import ChunkingOptions
from .sections import Draft, context_prefix, section_drafts
from .splitting import TokenCounter

ChunkKind = Literal["text", "table"]


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, as it is embedded and cited.

    ``text`` is exactly ``document.text[start:end]``: what a citation shows. ``embed_text`` is what gets embedded
    and what a retrieval prompt should quote: the heading path, for table chunks the table's header rows, then
    ``text``. ``id`` is a hash of the document's bytes, the span and ``embed_text``, so the same upload chunked
    with the same options gets the same ids.
    """

    id: str
    index: int
    kind: ChunkKind
    start: int
    end: int
    text: str
    embed_text: str
    headings: tuple[str, ...]  # the heading path, outermost first
    pages: tuple[int, ...]  # the PDF pages the span touches; empty for documents without pages
    tokens: int  # count_tokens(embed_text)


def chunk(document: ParsedDocument, options: ChunkingOptions, count_tokens: TokenCounter) -> list[Chunk]:
    """Cuts ``document`` into chunks in reading order. ``count_tokens`` is the embedding model's tokenizer count."""
    drafts = section_drafts(document, options, count_tokens)
    if options.merge_sections:
        drafts = _merge_small_sections(document.text, drafts, options, count_tokens)
    pages = _PageIndex(document)
    return [_finish(document, index, draft, pages, count_tokens) for index, draft in enumerate(drafts)]


def _merge_small_sections(
    text: str, drafts: list[Draft], options: ChunkingOptions, count_tokens: TokenCounter
) -> list[Draft]:
    """Joins neighbouring whole text sections under the same top heading, left to right, while they fit."""
    merged: list[Draft] = []
    for draft in drafts:
        previous = merged[-1] if merged else None
        if previous is not None and _mergeable(previous, draft):
            headings = _common_path(previous.headings, draft.headings)
            prefix = context_prefix(headings, "", options, count_tokens)
            candidate = replace(previous, end=draft.end, headings=headings, prefix=prefix)
            if _fits(text, candidate, options, count_tokens):
                merged[-1] = candidate
                continue
        merged.append(draft)
    return merged


def _mergeable(first: Draft, second: Draft) -> bool:
    return (
        first.kind == second.kind == "text"
        and first.whole_section
        and second.whole_section
        and bool(first.headings)
        and first.headings[:1] == second.headings[:1]
    )


def _common_path(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    common: list[str] = []
    for left, right in zip(first, second, strict=False):
        if left != right:
            break
        common.append(left)
    return tuple(common)


def _fits(text: str, draft: Draft, options: ChunkingOptions, count_tokens: TokenCounter) -> bool:
    if options.max_chars is not None and draft.end - draft.start > options.max_chars:
        return False
    return count_tokens(draft.prefix + text[draft.start : draft.end]) <= options.chunk_tokens


class _PageIndex:
    """The pages a span touches, found by bisection over the blocks (they are in text order and disjoint)."""

    def __init__(self, document: ParsedDocument):
        self._blocks = document.blocks
        self._starts = [block.start for block in document.blocks]

    def pages(self, start: int, end: int) -> tuple[int, ...]:
        found: set[int] = set()
        index = bisect.bisect_left(self._starts, end) - 1
        while index >= 0 and self._blocks[index].end > start:
            page = self._blocks[index].page
            if page is not None:
                found.add(page)
            index -= 1
        return tuple(sorted(found))


def _finish(document: ParsedDocument, index: int, draft: Draft, pages: _PageIndex, count: TokenCounter) -> Chunk:
    text = document.text[draft.start : draft.end]
    embed_text = draft.prefix + text
    identity = f"{document.content_hash}\0{draft.start}\0{draft.end}\0{embed_text}"
    return Chunk(
        id=hashlib.sha256(identity.encode()).hexdigest()[:32],
        index=index,
        kind=draft.kind,
        start=draft.start,
        end=draft.end,
        text=text,
        embed_text=embed_text,
        headings=draft.headings,
        pages=pages.pages(draft.start, draft.end),
        tokens=count(embed_text),
    )
