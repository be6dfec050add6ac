"""Knowledge bases, the library part: documents parsed into one canonical text.

    parse(bytes, filename, media_type) -> ParsedDocument      parsing.py, formats/ (one registry entry per format)

No HTTP and no database here; nothing heavy is imported until a format that needs it is parsed.
"""

from ..errors import DocumentError, DocumentProblem
from .document import (
    DEFAULT_MAX_CHARS,
    Block,
    Heading,
    ParsedDocument,
    Span,
    Table,
    TableRow,
    TextBlock,
    TextKind,
    content_hash,
)
from .formats import DocumentFormat, document_format, document_formats
from .parsing import find_format, parse, supported_suffixes

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Block",
    "DocumentError",
    "DocumentFormat",
    "DocumentProblem",
    "Heading",
    "ParsedDocument",
    "Span",
    "Table",
    "TableRow",
    "TextBlock",
    "TextKind",
    "content_hash",
    "document_format",
    "document_formats",
    "find_format",
    "parse",
    "supported_suffixes",
]
