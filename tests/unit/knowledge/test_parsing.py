from __future__ import annotations

import datetime
import io
import os
import zipfile
from typing import Any

import pytest

from openglm.errors import InvalidFieldError
from openglm.knowledge import (
    DocumentError,
    Heading,
    ParsedDocument,
    Table,
    TextBlock,
    content_hash,
    document_formats,
    find_format,
    parse,
)

from .checks import well_formed
from .documents import encrypt_pdf, make_docx, make_pdf, make_xlsx


def cells(document: ParsedDocument, row_index: int | None = None, table: int = 0) -> list[str]:
    """The cell texts of one table row (None: the header)."""
    found = [block for block in document.blocks if isinstance(block, Table)][table]
    row = found.header if row_index is None else found.rows[row_index]
    return [document.text[cell.start : cell.end] for cell in row.cells]


def headings(document: ParsedDocument) -> list[tuple[int, str]]:
    return [(block.level, block.title) for block in document.blocks if isinstance(block, Heading)]


# -- plain text and encodings --


@pytest.mark.parametrize(
    "data",
    [
        "第一段。\n\n第二段 second.".encode(),
        "第一段。\n\n第二段 second.".encode("utf-8-sig"),
        "第一段。\n\n第二段 second.".encode("utf-16"),
        "第一段。\n\n第二段 second.".encode("utf-16-be").join([b"\xfe\xff", b""]),
        "第一段。\n\n第二段 second.".encode("gb18030"),
        "第一段。\r\n\r\n第二段 second.".encode(),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "gb18030", "crlf"],
)
def test_text_is_decoded_and_split_into_paragraphs(data: bytes) -> None:
    document = well_formed(parse(data, "notes.txt"))
    assert document.text == "第一段。\n\n第二段 second."
    assert [document.text[b.start : b.end] for b in document.blocks] == ["第一段。", "第二段 second."]
    assert document.format == "txt"
    assert document.content_hash == content_hash(data)


def test_binary_garbage_named_txt_is_a_clear_error() -> None:
    with pytest.raises(DocumentError) as caught:
        parse(os.urandom(4096), "photo.txt")
    assert caught.value.problem == "undecodable"
    assert isinstance(caught.value, InvalidFieldError) and caught.value.status == 400


def test_a_png_named_txt_is_a_clear_error() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    with pytest.raises(DocumentError, match=r"binary|not text"):
        parse(png * 10, "image.txt")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t  "])
def test_empty_documents_are_refused(data: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        parse(data, "empty.txt")
    assert caught.value.problem == "empty"


def test_unsupported_types_name_what_is_supported() -> None:
    with pytest.raises(DocumentError, match=r"\.docx") as caught:
        parse(b"data", "archive.zip")
    assert caught.value.problem == "unsupported"
    with pytest.raises(DocumentError, match=r"save it as \.docx"):
        parse(b"data", "old.DOC")


def test_the_suffix_wins_and_the_media_type_is_the_fallback() -> None:
    assert find_format("report.PDF", "application/octet-stream").name == "pdf"
    assert find_format("upload", "text/markdown; charset=utf-8").name == "markdown"
    assert find_format("data.bin", "text/csv").name == "csv"
    assert set(document_formats.names()) == {"csv", "docx", "html", "json", "markdown", "pdf", "txt", "xlsx"}


def test_too_much_text_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        parse(b"word " * 1000, "long.txt", max_chars=1000)
    assert caught.value.problem == "too_large"


# -- markdown --

MARKDOWN = """---
title: Guide
---

# Install guide

Intro paragraph
over two lines.

Requirements
------------

| Name | Version | Notes |
|------|--------:|-------|
| numpy | 1.26 | a \\| pipe |
| fastapi | 0.115 | |

```python
# not a heading
print("x")
```

- first item
- second item

  continued item

## Steps #

Last words.
"""


def test_markdown_headings_tables_code_and_lists() -> None:
    document = well_formed(parse(MARKDOWN.encode(), "guide.md"))
    assert document.text == MARKDOWN  # markdown is its own canonical text
    assert document.title == "Install guide"
    assert headings(document) == [(1, "Install guide"), (2, "Requirements"), (2, "Steps")]
    kinds = [block.kind if isinstance(block, TextBlock) else type(block).__name__ for block in document.blocks]
    assert kinds == ["code", "Heading", "paragraph", "Heading", "Table", "code", "list", "Heading", "paragraph"]
    assert cells(document) == ["Name", "Version", "Notes"]
    assert cells(document, 0) == ["numpy", "1.26", "a \\| pipe"]
    assert cells(document, 1) == ["fastapi", "0.115", ""]
    code = next(b for b in document.blocks if isinstance(b, TextBlock) and b.kind == "code" and b.start > 20)
    assert "# not a heading" in document.text[code.start : code.end]
    listing = next(b for b in document.blocks if isinstance(b, TextBlock) and b.kind == "list")
    assert document.text[listing.start : listing.end].endswith("continued item")


def test_markdown_without_a_closing_fence_runs_to_the_end() -> None:
    document = well_formed(parse(b"# A\n\n```\n# B\ncode", "x.md"))
    assert headings(document) == [(1, "A")]


# -- html --

PAGE = b"""<html><head><title>Guide</title></head><body><nav>Home | About | Contact</nav>
<article><h1>Install guide</h1><p>This is the first paragraph of the article, long enough to be kept as content.</p>
<h2>Requirements</h2><p>You need Python 3.11 and a working compiler<br>on the machine for the native parts.</p>
<table><thead><tr><th>Name</th><th>Version</th></tr></thead><tbody><tr><td>numpy</td><td>1.26</td></tr>
<tr><td>fastapi</td><td>0.115</td></tr></tbody></table>
<h2>Steps</h2><ul><li>Clone the repository</li><li>Run make</li></ul>
<p>Finally the last paragraph explains what happens after the installation is complete.</p></article>
<footer>Copyright 2024 Example Corp</footer></body></html>"""


def test_html_main_content_with_headings_and_tables() -> None:
    document = well_formed(parse(PAGE, "page.html"))
    assert document.title == "Install guide"
    assert headings(document) == [(1, "Install guide"), (2, "Requirements"), (2, "Steps")]
    assert cells(document) == ["Name", "Version"]
    assert cells(document, 1) == ["fastapi", "0.115"]
    assert "working compiler\non the machine" in document.text
    assert "- Clone the repository\n- Run make" in document.text
    assert "Copyright" not in document.text and "Contact" not in document.text


def test_html_without_main_content_falls_back_to_its_text() -> None:
    document = parse(b"<html><body><span>just a few words</span></body></html>", "tiny.htm")
    assert "just a few words" in document.text


# -- pdf --


def test_pdf_pages_are_kept_for_citations() -> None:
    data = make_pdf([["Chapter one (intro).", "It begins here."], ["Page two says more."]], title="Manual")
    document = well_formed(parse(data, "manual.pdf"))
    assert document.title == "Manual"
    assert document.page_count == 2
    assert "Chapter one (intro)." in document.text and "Page two says more." in document.text
    pages = {block.page for block in document.blocks}
    assert pages == {1, 2}
    second = next(b for b in document.blocks if b.page == 2)
    assert document.text[second.start : second.end] == "Page two says more."


def test_pdf_encrypted_with_a_password_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        parse(encrypt_pdf(make_pdf([["secret"]]), "pw"), "locked.pdf")
    assert caught.value.problem == "encrypted"


def test_pdf_encrypted_only_against_editing_is_read() -> None:
    document = parse(encrypt_pdf(make_pdf([["open to read"]]), ""), "restricted.pdf")
    assert "open to read" in document.text


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", b"not a pdf at all", make_pdf([["x"]])[:200]],
    ids=["truncated-header", "not-pdf", "truncated"],
)
def test_corrupt_pdf_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        parse(data, "broken.pdf")
    assert caught.value.problem in ("corrupt", "empty")


def test_pdf_without_text_says_so() -> None:
    with pytest.raises(DocumentError, match="no text layer") as caught:
        parse(make_pdf([[]]), "scan.pdf")
    assert caught.value.problem == "empty"


# -- docx --


def _word_document(doc: Any) -> None:
    doc.add_heading("Handbook", 0)
    doc.add_heading("Leave", 1)
    doc.add_paragraph("Employees get 25 days.")
    doc.add_paragraph("ask your manager", style="List Bullet")
    table = doc.add_table(rows=3, cols=3)
    for r, row in enumerate([["Type", "Days", "Paid"], ["Annual", "25", "yes"], ["Sick | flu", "10", "yes"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 1).merge(table.cell(2, 2))
    doc.add_heading("Details", 2)
    doc.add_paragraph("After the table.")


def test_docx_headings_paragraphs_and_tables_in_order() -> None:
    document = well_formed(parse(make_docx(_word_document), "handbook.docx"))
    assert document.title == "Handbook"
    assert headings(document) == [(1, "Handbook"), (1, "Leave"), (2, "Details")]
    assert cells(document) == ["Type", "Days", "Paid"]
    assert cells(document, 0) == ["Annual", "25", "yes"]
    assert cells(document, 1) == ["Sick \\| flu", "10 yes"]  # the pipe escaped; the merged cell kept once
    text = document.text
    assert (
        text.index("25 days") < text.index("- ask your manager") < text.index("| Type") < text.index("After the table")
    )


def test_docx_that_is_not_a_zip_or_is_encrypted() -> None:
    with pytest.raises(DocumentError) as caught:
        parse(b"PK\x03\x04 broken zip", "x.docx")
    assert caught.value.problem == "corrupt"
    with pytest.raises(DocumentError) as caught:
        parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "locked.docx")
    assert caught.value.problem == "encrypted"


def test_a_zip_that_is_not_a_word_document() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="Word document"):
        parse(out.getvalue(), "fake.docx")


# -- csv and xlsx --


def test_csv_is_one_table_with_its_header() -> None:
    data = 'name;city;note\r\nAda;London;"likes | pipes"\r\nLin;"Bei\njing";\r\n\r\n'.encode("gb18030")
    document = well_formed(parse(data, "people.csv"))
    assert cells(document) == ["name", "city", "note"]
    assert cells(document, 0) == ["Ada", "London", "likes \\| pipes"]
    assert cells(document, 1) == ["Lin", "Bei jing"]  # one line per row; the trailing empty cell dropped
    assert document.text.startswith("| name | city | note |\n| --- | --- | --- |\n| Ada |")


def test_xlsx_sheets_are_tables_under_their_names() -> None:
    data = make_xlsx(
        {
            "Prices": [
                ["Item", "Price", "Since", None],
                ["Tea", 3.0, datetime.datetime(2024, 5, 1), None],
                [None, None],
                ["Cake", 4.5, True],
            ],
            "Empty": [],
            "Staff": [["Name"], ["Ada"]],
        }
    )
    document = well_formed(parse(data, "book.xlsx"))
    assert headings(document) == [(1, "Prices"), (1, "Staff")]
    assert cells(document) == ["Item", "Price", "Since"]
    assert cells(document, 0) == ["Tea", "3", "2024-05-01"]
    assert cells(document, 1) == ["Cake", "4.5", "TRUE"]
    assert cells(document, 0, table=1) == ["Ada"]


def test_xlsx_stops_reading_once_too_large() -> None:
    data = make_xlsx({"Big": [[f"row {i}", "x" * 50] for i in range(2000)]})
    with pytest.raises(DocumentError) as caught:
        parse(data, "big.xlsx", max_chars=10_000)
    assert caught.value.problem == "too_large"


# -- json --


def test_json_records_become_a_table_and_the_rest_key_paths() -> None:
    data = b'{"name": "shop", "owner": {"first": "Ada", "tags": ["a", "b"]}, "items": [{"id": 1, "ok": true}, {"id": 2, "note": "n"}]}'
    document = well_formed(parse(data, "shop.json"))
    assert "name: shop\nowner.first: Ada\nowner.tags[0]: a\nowner.tags[1]: b" in document.text
    assert headings(document) == [(1, "items")]
    assert cells(document) == ["id", "ok", "note"]
    assert cells(document, 0) == ["1", "true", ""]
    assert cells(document, 1) == ["2", "", "n"]


def test_json_arrays_of_nested_objects_are_one_block_per_element() -> None:
    document = well_formed(parse(b'[{"q": "why", "a": {"text": "because"}}, {"q": "how"}]', "faq.json"))
    texts = [document.text[b.start : b.end] for b in document.blocks]
    assert texts == ["[0].q: why\n[0].a.text: because", "[1].q: how"]


def test_invalid_json_is_corrupt() -> None:
    with pytest.raises(DocumentError) as caught:
        parse(b'{"a": ', "broken.json")
    assert caught.value.problem == "corrupt"


# -- hostile office files and isolation --


def bomb(application: str, inflated_mib: int) -> bytes:
    """A zip whose one part is ``inflated_mib`` MiB of one repeated character (about 1000-fold compressible)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(f"{application}/part.xml", "a" * inflated_mib * 1024 * 1024)
    return out.getvalue()


@pytest.mark.parametrize(("name", "part"), [("bomb.docx", "word"), ("bomb.xlsx", "xl")])
def test_office_compression_bombs_are_refused_from_the_zip_directory(name: str, part: str) -> None:
    with pytest.raises(DocumentError, match="compression bomb") as caught:
        parse(bomb(part, 8), name)
    assert caught.value.problem == "too_complex"


def test_office_files_with_too_many_parts_are_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for index in range(10_001):
            archive.writestr(f"p{index}", "")
    with pytest.raises(DocumentError, match="parts") as caught:
        parse(out.getvalue(), "many.docx")
    assert caught.value.problem == "too_complex"


def test_a_long_word_document_keeps_headings_and_text() -> None:
    """python-docx's ``paragraph.style`` scans all styles on every access; styles are looked up once here."""

    def build(document: Any) -> None:
        document.add_heading("Intro", 1)
        for i in range(3000):
            document.add_paragraph(f"Paragraph {i}.")

    document = parse(make_docx(build), "long.docx")
    assert headings(document) == [(1, "Intro")] and "Paragraph 2999." in document.text


async def test_parse_isolated_runs_in_a_worker_and_keeps_document_errors() -> None:
    from openglm.knowledge.parsing import parse_isolated
    from openglm.untrusted.pool import shared_pool

    try:
        document = await parse_isolated(b"# Title\n\nText.\n", "a.md")
        assert headings(document) == [(1, "Title")]
        with pytest.raises(DocumentError) as caught:
            await parse_isolated(bomb("word", 8), "bomb.docx")
        assert caught.value.problem == "too_complex"
        with pytest.raises(DocumentError, match="not a supported document"):
            await parse_isolated(b"x", "a.exe")
    finally:
        await shared_pool().close()
