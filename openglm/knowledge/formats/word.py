"""Word (.docx): paragraphs and tables in document order, headings from their styles or outline levels.

Headers, footers, footnotes, text boxes and tables nested in cells are not read.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ..document import DocumentBuilder, ParsedDocument
from .base import check_archive, document_format, reading, refuse_ole

_HEADING_STYLE = re.compile(r"(?i)(?:heading|标题)\s*([1-9])$")


@document_format(
    "docx",
    suffixes=(".docx",),
    media_types=("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
)
def parse_docx(data: bytes, max_chars: int) -> ParsedDocument:
    import docx
    from docx.table import Table

    refuse_ole(data, "Word")
    check_archive(data, "Word", "a Word document")
    builder = DocumentBuilder(max_chars)
    with reading("a Word document"):
        document = docx.Document(io.BytesIO(data))
        title = document.core_properties.title or None
        styles = _ParagraphStyles(document)
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                _table(builder, item)
            else:
                title = _paragraph(builder, item, styles.of(item)) or title
    return builder.build("docx", data, title)


class _ParagraphStyles:
    """Paragraph styles by id, looked up once per document. python-docx's ``paragraph.style`` scans every style
    of the document (with slow enum parsing) on each access: 2 ms a time, minutes for a long document."""

    def __init__(self, document: Any):
        from docx.enum.style import WD_STYLE_TYPE

        styles = document.styles
        self._default = styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self._by_id = {s.style_id: s for s in styles if s.type == WD_STYLE_TYPE.PARAGRAPH}

    def of(self, paragraph: Any) -> Any:
        """The style python-docx's ``paragraph.style`` would give: the one named, else the default."""
        style_id = paragraph._p.style
        return self._by_id.get(style_id, self._default) if style_id is not None else self._default


def _paragraph(builder: DocumentBuilder, paragraph: Any, paragraph_style: Any) -> str | None:
    """Adds the paragraph; returns its text if it is the document's Title paragraph."""
    text = paragraph.text
    style = paragraph_style.name if paragraph_style is not None else ""
    if style == "Title":
        builder.heading(text, 1)
        return " ".join(text.split()) or None
    if (level := _heading_level(paragraph, paragraph_style, style)) is not None:
        builder.heading(text, level)
    elif "List" in style or (paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None):
        builder.text("- " + text.strip() if text.strip() else "", "list")
    else:
        builder.text(text)
    return None


def _heading_level(paragraph: Any, paragraph_style: Any, style: str) -> int | None:
    """Built-in heading styles by name; custom ones (and localized names) by their outline level."""
    if match := _HEADING_STYLE.match(style):
        return int(match.group(1))
    for element in (paragraph._p, paragraph_style.element if paragraph_style is not None else None):
        if element is not None:
            for value in element.xpath("./w:pPr/w:outlineLvl/@w:val"):
                if value.isdigit() and int(value) < 9:  # 9 is "body text"
                    return int(value) + 1
    return None


def _table(builder: DocumentBuilder, table: Any) -> None:
    rows = [_cells(row) for row in table.rows]
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if rows:
        builder.table(rows[0], rows[1:])


def _cells(row: Any) -> list[str]:
    """A horizontally merged cell is reported once per grid column it spans; keep it once."""
    cells: list[str] = []
    previous = None
    for cell in row.cells:
        if cell._tc is not previous:
            cells.append(cell.text)
        previous = cell._tc
    return cells
