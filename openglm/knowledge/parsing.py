"""``parse``: an upload's bytes to a ParsedDocument, by the format its name (or media type) says it is."""

from __future__ import annotations

from pathlib import PurePath

from ..errors import DocumentError
from ..untrusted.pool import WorkLimitError, shared_pool
from .document import DEFAULT_MAX_CHARS, ParsedDocument
from .formats import DocumentFormat, document_formats

# Formats people upload that no parser here reads, with what to do instead.
_LEGACY = {
    ".doc": "save it as .docx",
    ".xls": "save it as .xlsx",
    ".ppt": "PowerPoint is not supported; export it as PDF",
    ".pptx": "PowerPoint is not supported; export it as PDF",
}


def parse(
    data: bytes, filename: str, media_type: str | None = None, *, max_chars: int = DEFAULT_MAX_CHARS
) -> ParsedDocument:
    """Parses an upload; raises DocumentError (a 400) when it is empty, unsupported, unreadable or too large.

    ``max_chars`` bounds the extracted text (a knowledge base can pass the room it has left).
    """
    document_format = find_format(filename, media_type)
    if not data:
        raise DocumentError("empty", "the file is empty")
    return document_format.parse(data, max_chars)


async def parse_isolated(
    data: bytes, filename: str, media_type: str | None = None, *, max_chars: int = DEFAULT_MAX_CHARS
) -> ParsedDocument:
    """``parse`` for the server: in a worker process, off the event loop, within the parse deadline and memory limit
    (``untrusted.pool``); a document that exceeds them is a DocumentError ("too_complex"), the server is unharmed."""
    find_format(filename, media_type)  # an unsupported type is refused here, without a worker
    if not data:
        raise DocumentError("empty", "the file is empty")
    try:
        return await shared_pool().run(_parse, data, filename, media_type, max_chars, what="the document")
    except WorkLimitError as exc:
        raise DocumentError("too_complex", exc.message) from None


def _parse(data: bytes, filename: str, media_type: str | None, max_chars: int) -> ParsedDocument:
    return parse(data, filename, media_type, max_chars=max_chars)


def find_format(filename: str, media_type: str | None = None) -> DocumentFormat:
    """The format named by the file's suffix, else by its media type (browsers often send octet-stream)."""
    suffix = PurePath(filename).suffix.lower()
    bare_type = (media_type or "").split(";")[0].strip().lower()
    for name in document_formats.names():
        if suffix in document_formats.get(name).suffixes:
            return document_formats.get(name)
    if suffix in _LEGACY:
        raise DocumentError("unsupported", f"{suffix} files cannot be read: {_LEGACY[suffix]}")
    for name in document_formats.names():
        if bare_type and bare_type in document_formats.get(name).media_types:
            return document_formats.get(name)
    raise DocumentError(
        "unsupported", f"{filename!r} is not a supported document; supported: {', '.join(supported_suffixes())}"
    )


def supported_suffixes() -> list[str]:
    return sorted(suffix for name in document_formats.names() for suffix in document_formats.get(name).suffixes)
