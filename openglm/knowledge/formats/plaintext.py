"""Plain text: the decoded text is the canonical text; paragraphs are what blank lines separate."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..document import ParsedDocument, TextBlock, check_text, content_hash, trimmed
from .base import decode_text, document_format

_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


@document_format("txt", suffixes=(".txt", ".text", ".log"), media_types=("text/plain",))
def parse_txt(data: bytes, max_chars: int) -> ParsedDocument:
    text = decode_text(data)
    check_text(text, max_chars)
    blocks = tuple(TextBlock(start, end) for start, end in paragraph_spans(text))
    return ParsedDocument(text, blocks, "txt", content_hash(data))


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """The spans of the paragraphs in ``text[start:end]``, each without the whitespace around it."""
    end = len(text) if end is None else end
    position = start
    for blank in _BLANK_LINES.finditer(text, start, end):
        if (span := trimmed(text, position, blank.start())) is not None:
            yield span
        position = blank.end()
    if (span := trimmed(text, position, end)) is not None:
        yield span
