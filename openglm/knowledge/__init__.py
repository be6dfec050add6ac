"""Knowledge bases. This package's top level is the library part: documents parsed into one canonical text,
then cut into cited chunks.

    parse(bytes, filename, media_type) -> ParsedDocument      parsing.py, formats/ (one registry entry per format)
    chunk(document, ChunkingOptions, count_tokens) -> [Chunk]   chunking.py, sections.py, splitting.py

The platform part is in its modules: store.py (database), index.py (vector indexes), fulltext.py, fusion.py and
retrieval.py (hybrid search), ingest.py (background ingestion), chat.py (the retrieval tool), service.py.
Nothing heavy is imported until a format that needs it is parsed.
"""

from ..errors import DocumentError, DocumentProblem
from .chunking import Chunk, ChunkKind, chunk
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
from .options import DEFAULT_SEPARATORS, ChunkingOptions, approximate_tokens
from .parsing import find_format, parse, supported_suffixes
from .splitting import TokenCounter

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_SEPARATORS",
    "Block",
    "Chunk",
    "ChunkKind",
    "ChunkingOptions",
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
    "TokenCounter",
    "approximate_tokens",
    "chunk",
    "content_hash",
    "document_format",
    "document_formats",
    "find_format",
    "parse",
    "supported_suffixes",
]
