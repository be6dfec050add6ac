"""PDF: pypdf's text of each page, with the page number kept on every block for citations.

PDFs carry no reliable headings or tables (they are positioned glyphs), so a page is paragraphs: the text between
blank lines. A PDF without a text layer (a scan) is an error that says so: OCR is not done here.
"""

from __future__ import annotations

import io
from typing import Any

from ...errors import DocumentError
from ..document import DocumentBuilder, ParsedDocument
from .base import document_format, normalize_text, reading
from .plaintext import paragraph_spans


@document_format("pdf", suffixes=(".pdf",), media_types=("application/pdf",))
def parse_pdf(data: bytes, max_chars: int) -> ParsedDocument:
    from pypdf import PdfReader

    if b"%PDF-" not in data[:1024]:  # where the standard allows the header to be
        raise DocumentError("corrupt", "the file is not a PDF (it has no %PDF- header)")
    builder = DocumentBuilder(max_chars)
    with reading("a PDF"):
        reader = PdfReader(io.BytesIO(data))
        _unlock(reader)
        for number, page in enumerate(reader.pages, start=1):
            text = normalize_text(page.extract_text() or "")
            for start, end in paragraph_spans(text):
                builder.text(text[start:end], page=number)
        page_count = len(reader.pages)
        title = _title(reader)
    try:
        return builder.build("pdf", data, title, page_count)
    except DocumentError as error:
        if error.problem != "empty":
            raise
        raise DocumentError("empty", "the PDF has no text layer (a scan?); OCR is not supported") from None


def _unlock(reader: Any) -> None:
    """Many PDFs are encrypted only against editing, with an empty user password: those open and are read."""
    from pypdf import PasswordType

    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise DocumentError("encrypted", "the PDF is protected by a password; upload it without one")


def _title(reader: Any) -> str | None:
    metadata = reader.metadata
    title = metadata.title if metadata is not None else None
    return str(title).strip() or None if title else None
