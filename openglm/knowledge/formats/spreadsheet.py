"""CSV and Excel: every sheet is one table whose first non-empty row is its header.

Rows are kept whole here so that chunking can repeat the header in every chunk; an Excel sheet's name is a heading
above its table, so chunks of different sheets say which sheet they come from.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from typing import Any

from ...errors import DocumentError
from ..document import DocumentBuilder, ParsedDocument
from .base import check_archive, decode_text, document_format, reading, refuse_ole

_DELIMITERS = ",;\t|"


@document_format(
    "csv", suffixes=(".csv", ".tsv"), media_types=("text/csv", "text/tab-separated-values", "application/csv")
)
def parse_csv(data: bytes, max_chars: int) -> ParsedDocument:
    text = decode_text(data)
    builder = DocumentBuilder(max_chars)
    with reading("CSV"):
        records = csv.reader(io.StringIO(text, newline=""), _dialect(text))
        rows = list(bounded_rows(records, max_chars))
    if rows:
        builder.table(rows[0], rows[1:])
    return builder.build("csv", data)


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """The sniffed delimiter and quoting; plain commas when the sample is ambiguous (one column, say)."""
    try:
        return csv.Sniffer().sniff(text[:65_536], delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel_tab if text[:65_536].count("\t") > text[:65_536].count(",") else csv.excel


@document_format(
    "xlsx",
    suffixes=(".xlsx", ".xlsm"),
    media_types=("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",),
)
def parse_xlsx(data: bytes, max_chars: int) -> ParsedDocument:
    from openpyxl import load_workbook

    refuse_ole(data, "Excel")
    check_archive(data, "Excel", "an Excel workbook")
    builder = DocumentBuilder(max_chars)
    with reading("an Excel workbook"):
        # read_only streams rows instead of building every cell object; data_only reads formulas' cached values
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                values = sheet.iter_rows(values_only=True)
                rows = list(bounded_rows(([cell_text(v) for v in row] for row in values), max_chars))
                if rows:
                    builder.heading(sheet.title, 1)
                    builder.table(rows[0], rows[1:])
        finally:
            workbook.close()
    return builder.build("xlsx", data)


def bounded_rows(rows: Iterable[list[str]], max_chars: int) -> Iterator[list[str]]:
    """Non-empty rows without their trailing empty cells; stops with an error once they exceed ``max_chars``."""
    total = 0
    for row in rows:
        while row and not row[-1].strip():
            row.pop()
        if not row:
            continue
        total += sum(len(cell) + 3 for cell in row)
        if total > max_chars:
            raise DocumentError("too_large", f"the document has more than {max_chars:,} characters of text")
        yield row


def cell_text(value: Any) -> str:
    """A cell as a reader would type it: 3 not 3.0, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)
