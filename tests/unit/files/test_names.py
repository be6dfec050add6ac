"""File names and media types are cleaned once, at creation; a download's headers are safe for any name, even one
stored before names were cleaned."""

from __future__ import annotations

import email.message
from urllib.parse import unquote

import h11
import pytest

from openglm.api.downloads import content_disposition
from openglm.files.names import MAX_NAME_BYTES, clean_filename, clean_media_type


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("evil\r\nX-Injected: yes.txt", "evil_X-Injected: yes.txt"),
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("dir/", "dir"),
        ("a\x00b\x1b[31mc.txt", "a_b_[31mc.txt"),
        ("invoice\u202egpj.exe", "invoice_gpj.exe"),  # a right-to-left override disguising the extension
        ("line\u2028sep.txt", "line_sep.txt"),
        ("  spaced\tname .txt  ", "spaced_name .txt"),
        ("caf\u0065\u0301.txt", "caf\u00e9.txt"),  # NFC
        ("..", "file"),
        ("\r\n", "file"),
        ("", "file"),
        ('quote"and;semi.txt', 'quote"and;semi.txt'),  # harmless in a stored name; the header handles them
        ("数据分析.xlsx", "数据分析.xlsx"),
    ],
)
def test_names_are_cleaned_at_creation(name: str, clean: str) -> None:
    assert clean_filename(name) == clean


def test_overlong_names_keep_their_suffix_within_the_byte_limit() -> None:
    name = clean_filename("名" * 300 + ".csv")
    assert name.endswith(".csv") and len(name.encode()) <= MAX_NAME_BYTES and name.startswith("名")
    assert len(clean_filename("x" * 1000).encode()) == MAX_NAME_BYTES


@pytest.mark.parametrize(
    ("value", "clean"),
    [
        ("text/csv", "text/csv"),
        ("Text/Plain; charset=utf-8", "text/plain"),
        ("text/html\r\nX-Injected: yes", "application/octet-stream"),
        ("", "application/octet-stream"),
        (None, "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("a/" + "b" * 200, "application/octet-stream"),
    ],
)
def test_media_types_are_one_or_octet_stream(value: str | None, clean: str) -> None:
    assert clean_media_type(value) == clean


@pytest.mark.parametrize(
    "name",
    [
        "evil\r\nX-Injected: yes.txt",  # stored by an older version, uncleaned
        'a "quoted" \\ back%20slash.txt',
        "数据 分析.xlsx",
        "\x00\x7f\u202e",
        "",
        "plain.txt",
    ],
)
def test_content_disposition_is_one_valid_header_for_any_name(name: str) -> None:
    value = content_disposition(name)
    # h11 (uvicorn's HTTP/1.1) refuses a header value it could not send; this one it sends.
    h11.Response(status_code=200, headers=[("Content-Disposition", value)])
    assert all(0x20 <= ord(c) < 0x7F for c in value)
    parsed = email.message.Message()
    parsed["Content-Disposition"] = value
    assert parsed.get_content_disposition() == "attachment"
    exact = value.split("filename*=UTF-8''", 1)[1]
    assert unquote(exact) == name  # the exact name survives for clients that read RFC 5987
    fallback = parsed.get_param("filename", header="content-disposition")
    assert isinstance(fallback, str) and fallback and '"' not in fallback and "\\" not in fallback
