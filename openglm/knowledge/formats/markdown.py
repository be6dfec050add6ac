"""Markdown: the source is the canonical text; blocks are found line by line, CommonMark's way where it matters.

What matters for chunking: ATX and setext headings (but nothing inside a fenced code block is a heading), GFM pipe
tables (header, delimiter row, body rows), fenced code, lists and paragraphs. Inline markup stays as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

from ..document import (
    Block,
    Heading,
    ParsedDocument,
    Span,
    Table,
    TableRow,
    TextBlock,
    TextKind,
    check_text,
    content_hash,
    trimmed,
)
from .base import decode_text, document_format

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Only the opening of an ATX heading is a regex; its closing #s are stripped by ``_atx_heading``. One regex for the
# whole line (``(.*?)(?:[ \t]+#+)?[ \t]*$``) backtracked quadratically on a line of spaces then #s (16 KB: 5 s).
_ATX_OPEN = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r" {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_DELIMITER_CELL = re.compile(r":?-+:?")
_PIPE = re.compile(r"(?<!\\)\|")


@document_format("markdown", suffixes=(".md", ".markdown"), media_types=("text/markdown", "text/x-markdown"))
def parse_markdown(data: bytes, max_chars: int) -> ParsedDocument:
    text = decode_text(data)
    check_text(text, max_chars)
    blocks = _MarkdownReader(text).read()
    title = next((b.title for b in blocks if isinstance(b, Heading) and b.level == 1), None)
    return ParsedDocument(text, tuple(blocks), "markdown", content_hash(data), title)


@dataclass
class _MarkdownReader:
    text: str
    lines: list[tuple[int, int]] = field(init=False)  # each line's span, without its newline
    blocks: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines, start = [], 0
        for line in self.text.split("\n"):
            self.lines.append((start, start + len(line)))
            start += len(line) + 1

    def line(self, index: int) -> str:
        start, end = self.lines[index]
        return self.text[start:end]

    def blank(self, index: int) -> bool:
        return not self.line(index).strip()

    def read(self) -> list[Block]:
        index = self._front_matter()
        paragraph: list[int] = []  # the open paragraph's lines: a setext underline turns them into a heading
        while index < len(self.lines):
            if paragraph and _SETEXT.match(self.line(index)):
                self._setext_heading(paragraph, index)
                paragraph, index = [], index + 1
                continue
            after = self._block_at(index)
            if after is None and not self.blank(index):
                paragraph.append(index)
                index += 1
                continue
            self._close_paragraph(paragraph)
            paragraph, index = [], (index + 1 if after is None else after)
        self._close_paragraph(paragraph)
        self.blocks.sort(key=lambda block: block.start)  # a paragraph is closed after the block that ended it
        return self.blocks

    def _block_at(self, index: int) -> int | None:
        """Reads the non-paragraph block starting at ``index``; returns the line after it, or None if none starts."""
        line = self.line(index)
        if _FENCE.match(line):
            return self._fenced_code(index)
        if heading := _atx_heading(line):
            self._add_heading(index, index, *heading)
            return index + 1
        if _THEMATIC_BREAK.match(line):
            return index + 1
        if (after := self._table(index)) is not None:
            return after
        if _LIST_ITEM.match(line):
            return self._list(index)
        return None

    def _front_matter(self) -> int:
        """YAML front matter is kept as a code block: its keys (title, tags) are worth finding."""
        if len(self.lines) < 2 or self.line(0) != "---":
            return 0
        for index in range(1, len(self.lines)):
            if self.line(index) in ("---", "..."):
                self._add_text(0, index, "code")
                return index + 1
        return 0

    def _fenced_code(self, index: int) -> int:
        match = _FENCE.match(self.line(index))
        assert match is not None
        fence = match.group(1)
        for end in range(index + 1, len(self.lines)):
            closing = self.line(end).strip()
            if len(closing) >= len(fence) and set(closing) == {fence[0]}:
                self._add_text(index, end, "code")
                return end + 1
        self._add_text(index, len(self.lines) - 1, "code")  # an unclosed fence runs to the end, as CommonMark says
        return len(self.lines)

    def _table(self, index: int) -> int | None:
        if index + 1 >= len(self.lines) or "|" not in self.line(index):
            return None
        delimiter = self.line(index + 1)
        if "|" not in delimiter or not _is_delimiter_row(delimiter):
            return None
        header = self._row(index)
        if len(header.cells) != len(self._row(index + 1).cells):
            return None
        rows, end = [], index + 2
        while end < len(self.lines) and not self.blank(end) and "|" in self.line(end):
            rows.append(self._row(end))
            end += 1
        last = rows[-1].end if rows else self.lines[index + 1][1]
        self.blocks.append(Table(header.start, last, header, tuple(rows)))
        return end

    def _row(self, index: int) -> TableRow:
        start, end = trimmed(self.text, *self.lines[index]) or self.lines[index]
        pipes = [match.start() for match in _PIPE.finditer(self.text, start, end)]
        edges = [start - 1, *pipes, end]
        cells = [(left + 1, right) for left, right in pairwise(edges)]
        if pipes and pipes[0] == start:
            cells = cells[1:]  # the nothing before a leading pipe
        if pipes and pipes[-1] == end - 1 and cells:
            cells = cells[:-1]  # and after a trailing one
        spans = tuple(Span(*(trimmed(self.text, left, right) or (left, left))) for left, right in cells)
        return TableRow(start, end, spans)

    def _list(self, index: int) -> int:
        """A list runs over its items and their continuation lines, and over blank lines between items."""
        end = index
        while end + 1 < len(self.lines):
            following = end + 1
            if self.blank(following):
                later = next((i for i in range(following, len(self.lines)) if not self.blank(i)), None)
                if later is None or not (_LIST_ITEM.match(self.line(later)) or self.line(later).startswith("  ")):
                    break
                end = later
            elif _FENCE.match(self.line(following)) or _atx_heading(self.line(following)):
                break
            else:
                end = following
        self._add_text(index, end, "list")
        return end + 1

    def _setext_heading(self, paragraph: list[int], underline: int) -> None:
        level = 1 if self.line(underline).strip().startswith("=") else 2
        title = " ".join(self.line(i).strip() for i in paragraph)
        self._add_heading(paragraph[0], underline, level, title)

    def _close_paragraph(self, paragraph: list[int]) -> None:
        if paragraph:
            self._add_text(paragraph[0], paragraph[-1], "paragraph")

    def _add_heading(self, first: int, last: int, level: int, title: str) -> None:
        title = " ".join(title.split())
        span = trimmed(self.text, self.lines[first][0], self.lines[last][1])
        if title and span is not None:
            self.blocks.append(Heading(*span, level, title))

    def _add_text(self, first: int, last: int, kind: TextKind) -> None:
        if span := trimmed(self.text, self.lines[first][0], self.lines[last][1]):
            self.blocks.append(TextBlock(*span, kind))


def _atx_heading(line: str) -> tuple[int, str] | None:
    """``# Title ##`` → (1, "Title"): CommonMark's ATX heading, whose optional closing run of #s must follow a space
    or tab. Linear in the line's length (plain string operations after the opening)."""
    opening = _ATX_OPEN.match(line)
    if opening is None:
        return None
    title = line[opening.end() :].strip(" \t")
    unclosed = title.rstrip("#")
    if not unclosed:
        title = ""
    elif unclosed != title and unclosed[-1] in " \t":
        title = unclosed.rstrip(" \t")
    return len(opening.group(1)), title


def _is_delimiter_row(line: str) -> bool:
    """A GFM table's delimiter row (``| --- | :-: |``): cells of dashes with optional colons, between pipes.

    Split on pipes rather than matched by one regex, whose nested optional whitespace backtracked quadratically."""
    body = line.strip(" \t")
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if body.startswith("|") and (len(indent) > 3 or "\t" in indent):
        return False  # a leading pipe comes after at most three spaces
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return all(_DELIMITER_CELL.fullmatch(cell.strip(" \t")) for cell in body.split("|"))
