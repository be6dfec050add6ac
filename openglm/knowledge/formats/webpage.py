"""HTML: trafilatura finds the main content (no menus, footers or cookie banners) and returns it as XML.

Its XML keeps the structure chunking needs: ``<head rend="h2">``, ``<p>``, ``<list>/<item>``, ``<code>``, and
``<table>/<row>/<cell role="head">``. A page trafilatura finds no main content in falls back to all of its text.
"""

from __future__ import annotations

from typing import Any

from ..document import DocumentBuilder, ParsedDocument
from .base import decode_text, document_format, reading

_HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}


@document_format("html", suffixes=(".html", ".htm", ".xhtml"), media_types=("text/html", "application/xhtml+xml"))
def parse_html(data: bytes, max_chars: int) -> ParsedDocument:
    import trafilatura
    from lxml import etree

    html = decode_text(data)
    builder = DocumentBuilder(max_chars)
    with reading("HTML"):
        xml = trafilatura.extract(
            html,
            output_format="xml",
            include_tables=True,
            include_comments=False,
            favor_recall=True,
            with_metadata=True,
        )
        root = etree.fromstring(xml) if xml else None
    for element in root.iterfind("main/*") if root is not None else ():
        _render(builder, element)
    if builder.empty:  # no main content found: a fragment, or a page that is all navigation
        with reading("HTML"):
            builder.text(trafilatura.html2txt(html))
    return builder.build("html", data, title=(root.get("title") or None) if root is not None else None)


def _render(builder: DocumentBuilder, element: Any) -> None:
    tag = element.tag
    if tag == "head":
        builder.heading(_inline_text(element), _HEADING_LEVELS.get(element.get("rend", ""), 2))
    elif tag == "list":
        builder.text("\n".join(_list_lines(element, depth=0)), "list")
    elif tag == "table":
        rows = [[_inline_text(cell) for cell in row.iterfind("cell")] for row in element.iterfind("row")]
        rows = [row for row in rows if any(row)]
        if rows:
            builder.table(rows[0], rows[1:])  # the first row is the header, marked role="head" or not
    elif tag == "code":
        builder.text("".join(element.itertext()), "code")
    elif tag != "graphic":
        builder.text(_inline_text(element))


def _inline_text(element: Any) -> str:
    """The element's words, one line per ``<lb/>``, runs of spaces collapsed."""
    lines = [""]
    if element.text:
        lines[-1] += element.text
    for child in element:
        if child.tag == "lb":
            lines.append("")
        elif child.tag != "list":  # a list inside an item is rendered as lines of its own
            lines[-1] += "".join(child.itertext())
        if child.tail:
            lines[-1] += child.tail
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


def _list_lines(element: Any, depth: int) -> list[str]:
    lines: list[str] = []
    for item in element.iterfind("item"):
        lines.append("  " * depth + "- " + _inline_text(item).replace("\n", " "))
        for nested in item.iterfind("list"):
            lines.extend(_list_lines(nested, depth + 1))
    return lines
