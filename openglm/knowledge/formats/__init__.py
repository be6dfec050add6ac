"""Built-in document formats; importing this package registers them (third-party parsers stay lazy inside)."""

from . import jsondata, markdown, pdf, plaintext, spreadsheet, webpage, word
from .base import DocumentFormat, document_format, document_formats

__all__ = [
    "DocumentFormat",
    "document_format",
    "document_formats",
    "jsondata",
    "markdown",
    "pdf",
    "plaintext",
    "spreadsheet",
    "webpage",
    "word",
]
