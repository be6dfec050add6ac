"""A parsed document: one canonical text and the blocks (headings, text, tables) that tile it.

Every span is a pair of character offsets into ``ParsedDocument.text``; chunks and citations point into the same
text, so what a citation shows is exactly what was embedded. ``DocumentBuilder`` renders blocks into that text for
the formats that are not text already (HTML, PDF, Word, spreadsheets, JSON): headings as ``# Title`` lines and
tables as pipe rows, so the canonical text reads as Markdown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import DocumentError
from ..untrusted.transfer import transferable

TextKind = Literal["paragraph", "list", "code"]
BLOCK_SEPARATOR = "\n\n"
DEFAULT_MAX_CHARS = 5_000_000  # about 2,500 pages of prose; a knowledge base can pass its own remaining room


@transferable
@dataclass(frozen=True)
class Span:
    start: int
    end: int


@transferable
@dataclass(frozen=True)
class Heading:
    start: int
    end: int
    level: int  # 1 (top) to 6
    title: str  # the heading's words, without markup
    page: int | None = None


@transferable
@dataclass(frozen=True)
class TextBlock:
    start: int
    end: int
    kind: TextKind = "paragraph"
    page: int | None = None  # 1-based, for paged formats (PDF)


@transferable
@dataclass(frozen=True)
class TableRow:
    start: int
    end: int
    cells: tuple[Span, ...]  # each cell's text, without the pipes around it


@transferable
@dataclass(frozen=True)
class Table:
    start: int
    end: int
    header: TableRow
    rows: tuple[TableRow, ...]  # the body rows, in order; the header is not among them
    page: int | None = None


Block = Heading | TextBlock | Table


@transferable
@dataclass(frozen=True)
class ParsedDocument:
    text: str
    blocks: tuple[Block, ...]
    format: str  # the parser's registry name: txt, markdown, html, pdf, docx, csv, xlsx, json
    content_hash: str  # sha256 of the uploaded bytes (``content_hash``)
    title: str | None = None  # the document's own title, when it names one (HTML, Word, PDF metadata)
    page_count: int | None = None


def content_hash(data: bytes) -> str:
    """The identity of an upload: the same bytes always parse and chunk the same way."""
    return hashlib.sha256(data).hexdigest()


def check_text(text: str, max_chars: int) -> None:
    """The checks every parser makes on the text it produced: something to index, and not too much of it."""
    if not text.strip():
        raise DocumentError("empty", "the document has no text")
    if len(text) > max_chars:
        raise DocumentError("too_large", f"the document has more than {max_chars:,} characters of text")


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` without leading and trailing whitespace, or None if nothing else is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def clean_cell(value: str) -> str:
    """One table cell on one line: a pipe inside it is escaped so the row still reads as Markdown."""
    return " ".join(value.split()).replace("|", "\\|")


@dataclass
class DocumentBuilder:
    """Appends rendered blocks to the canonical text, recording each one's span.

    The size limit is checked on every append, so a zip bomb of a spreadsheet stops early instead of filling
    memory first.
    """

    max_chars: int = DEFAULT_MAX_CHARS
    _parts: list[str] = field(default_factory=list)
    _length: int = 0
    _blocks: list[Block] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self._blocks

    def heading(self, title: str, level: int, page: int | None = None) -> None:
        title = " ".join(title.split())
        if title:
            level = min(max(level, 1), 6)
            start, end = self._append("#" * level + " " + title)
            self._blocks.append(Heading(start, end, level, title, page))

    def text(self, text: str, kind: TextKind = "paragraph", page: int | None = None) -> None:
        text = text.strip()
        if text:
            start, end = self._append(text)
            self._blocks.append(TextBlock(start, end, kind, page))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], page: int | None = None) -> None:
        """Pipe rows: the header, a ``| --- |`` line, then one line per body row."""
        if not any(cell.strip() for cell in header) and not rows:
            return
        start = self._length + (len(BLOCK_SEPARATOR) if self._parts else 0)
        header_row, offset = _render_row(header, start)
        lines = [_line(header), "| " + " | ".join("---" for _ in header) + " |"]
        offset += len(lines[1]) + 1
        body: list[TableRow] = []
        for row in rows:
            rendered, offset = _render_row(row, offset)
            body.append(rendered)
            lines.append(_line(row))
        appended = self._append("\n".join(lines))
        assert appended[0] == start  # the row offsets above were computed for exactly this position
        self._blocks.append(Table(start, appended[1], header_row, tuple(body), page))

    def build(
        self, format: str, data: bytes, title: str | None = None, page_count: int | None = None
    ) -> ParsedDocument:
        text = "".join(self._parts)
        check_text(text, self.max_chars)
        return ParsedDocument(text, tuple(self._blocks), format, content_hash(data), title, page_count)

    def _append(self, text: str) -> tuple[int, int]:
        if self._parts:
            self._parts.append(BLOCK_SEPARATOR)
            self._length += len(BLOCK_SEPARATOR)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        if self._length > self.max_chars:
            raise DocumentError("too_large", f"the document has more than {self.max_chars:,} characters of text")
        return start, self._length


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(clean_cell(cell) for cell in cells) + " |"


def _render_row(cells: Sequence[str], start: int) -> tuple[TableRow, int]:
    """The row's span and its cells' spans when rendered by ``_line`` at ``start``; also the next line's start."""
    spans: list[Span] = []
    position = start + 2  # past "| "
    for cell in cells:
        width = len(clean_cell(cell))
        spans.append(Span(position, position + width))
        position += width + 3  # past " | "
    end = start + len(_line(cells))
    return TableRow(start, end, tuple(spans)), end + 1
