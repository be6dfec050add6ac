"""Hostile inputs for the parsing tests, built in memory: pages, documents and OpenAPI texts that once stalled or
exhausted the server (issue #12, items 2, 6 and 11)."""

from __future__ import annotations

import io
import random
import zipfile

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx(paragraphs: list[str]) -> bytes:
    """The smallest Word document python-docx opens: its text is ``paragraphs``."""
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    xml = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("word/document.xml", xml)
    return out.getvalue()


def docx_bomb(xml_mib: int) -> bytes:
    """A Word document whose XML inflates to about ``xml_mib`` MiB from a few dozen KiB: the same paragraph."""
    return docx(["a"] * (xml_mib * 1024 * 1024 // 36))


def slow_docx(xml_mib: int) -> bytes:
    """A Word document of varied words (it compresses only about four-fold, so no bomb check refuses it) whose
    parse takes several seconds per MiB of XML: only the parse deadline stops it."""
    words = [f"w{n}" for n in range(2000)]
    chooser = random.Random(12)
    paragraphs = [" ".join(chooser.choices(words, k=12)) for _ in range(xml_mib * 1024 * 1024 // 100)]
    return docx(paragraphs)


def heading_line_markdown() -> bytes:
    """A 16 KB ATX heading line of spaces then #s, then a non-space: one regex took seconds on it."""
    return ("# a" + " " * 8000 + "#" * 8000 + "b\n\nSome text under the heading.\n").encode()


def link_and_title_page() -> bytes:
    """48 KB of unclosed ``<a `` and ``<title>`` tags: regexes over the raw HTML took seconds on it."""
    return ("<html><head>" + "<title>" * 1000 + "</head><body>" + "<a " * 14000 + "</body></html>").encode()


def billion_laughs_openapi() -> str:
    """About 1 KB of YAML whose aliases expand to 9^9 strings."""
    lines = ["openapi: 3.0.0", "info: {title: laughs, version: '1'}", "servers: [{url: 'https://example.com'}]"]
    lines.append('x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"x-{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    lines += [
        "paths:",
        "  /laugh:",
        "    post:",
        "      operationId: laugh",
        "      requestBody: {content: {application/json: {schema: {type: string, enum: *i}}}}",
    ]
    return "\n".join(lines) + "\n"


def slow_openapi(seed: int) -> str:
    """A valid OpenAPI YAML just under the 200 KB a GLM may give, whose one extension is a flow list of 66,000
    empty lists: parsing it takes about 0.4 s of CPU. ``seed`` makes each text different (none is cached)."""
    head = f"openapi: 3.0.0\ninfo: {{title: slow-{seed}, version: '1'}}\nservers: [{{url: 'https://example.com'}}]\n"
    return head + "paths: {}\nx-slow: [" + "[]," * 65_000 + "[]]\n"
