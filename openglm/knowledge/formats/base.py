"""The document format registry, and what every parser shares: decoding text and translating library errors."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ...errors import DocumentError
from ...registry import Registry
from ..document import ParsedDocument

# A parser gets the upload and the largest text it may produce; it raises DocumentError for anything it cannot read.
ParseFunction = Callable[[bytes, int], ParsedDocument]


@dataclass(frozen=True)
class DocumentFormat:
    name: str
    suffixes: tuple[str, ...]  # lower case, with the dot
    media_types: tuple[str, ...]
    parse: ParseFunction


document_formats: Registry[DocumentFormat] = Registry("document format")


def document_format(
    name: str, *, suffixes: tuple[str, ...], media_types: tuple[str, ...] = ()
) -> Callable[[ParseFunction], ParseFunction]:
    """Registers a parse function under ``name`` for the file suffixes and media types it reads."""

    def decorator(parse: ParseFunction) -> ParseFunction:
        document_formats.register(name)(DocumentFormat(name, suffixes, media_types, parse))
        return parse

    return decorator


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turns whatever a format library raises on a damaged file into a DocumentError.

    Libraries fail on corrupt input with anything (KeyError, zipfile.BadZipFile, struct.error, lxml errors), so
    this catches broadly, but only around the library calls; the cause stays chained for the logs.
    """
    try:
        yield
    except DocumentError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise DocumentError("corrupt", f"the file could not be read as {what} ({type(exc).__name__})") from exc


_PREFERRED_ON_TIE = ("gb18030", "cp1252")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def refuse_ole(data: bytes, application: str) -> None:
    """An OLE container where OOXML (a zip) is expected: a password-protected file, or the pre-2007 format."""
    if data.startswith(_OLE_MAGIC):
        raise DocumentError(
            "encrypted",
            f"the file is a password-protected or pre-2007 {application} file; "
            "save it in the current format, without a password",
        )


MiB = 1024 * 1024
MAX_ARCHIVE_ENTRIES = 10_000
MAX_INFLATED = 128 * MiB  # the XML of an office file, all parts together: far more text than a document may hold
MAX_RATIO = 100  # inflated / compressed; office files are 3 to 30 times smaller zipped, compression bombs 300+


def check_archive(data: bytes, application: str, what: str) -> None:
    """Refuses an OOXML file (a zip) whose parts would inflate to too much XML, before any library opens it.

    The central directory says each part's inflated size, and Python's zipfile (which python-docx and openpyxl
    read through) never inflates a part past the size it declares, so this bounds what parsing can be handed. A
    24 KiB .docx of 8 MiB of XML was accepted and parsed for minutes before this check."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DocumentError("corrupt", f"the file could not be read as {what} ({type(exc).__name__})") from None
    if len(parts) > MAX_ARCHIVE_ENTRIES:
        raise DocumentError("too_complex", f"the {application} file has more than {MAX_ARCHIVE_ENTRIES:,} parts")
    inflated = sum(part.file_size for part in parts)
    if inflated > MAX_INFLATED:
        raise DocumentError(
            "too_complex", f"the {application} file inflates to {inflated // MiB:,} MiB; at most {MAX_INFLATED // MiB}"
        )
    if inflated > MiB and inflated > MAX_RATIO * len(data):
        raise DocumentError(
            "too_complex",
            f"the {application} file inflates {inflated // len(data):,}-fold to {inflated / MiB:.1f} MiB of XML "
            f"(at most {MAX_RATIO}-fold): a compression bomb is not read",
        )


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),  # before UTF-16: the UTF-32 LE mark starts like the UTF-16 LE one
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls other than tab, newline, carriage return, vertical tab and form feed: text files have none of these.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str:
    """Text out of an upload: a byte-order mark, else UTF-8, else the encoding charset-normalizer is sure of.

    Chinese uploads are often GB18030/GBK and Japanese ones Shift-JIS, so UTF-8 alone is not enough; bytes that no
    encoding reads plausibly (an image renamed .txt) are a clear error instead of mojibake in the index.
    """
    if not data:
        raise DocumentError("empty", "the file is empty")
    text = _decode(data)
    sample = text[:100_000]
    if "\x00" in sample or len(_CONTROLS.findall(sample)) > len(sample) // 100:
        raise DocumentError("undecodable", "the file looks binary, not text")
    return normalize_text(text)


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise DocumentError(
                    "undecodable", f"the file starts with a {encoding} mark but is not {encoding}"
                ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        raise DocumentError("undecodable", "the file is not text in UTF-8, UTF-16 or another known encoding")
    # Short CJK texts read equally well as Chinese and Korean, and Western ones as cp1250 and cp1252: on a tie,
    # take the encoding this platform's uploads are most likely in.
    tied = [match for match in matches if match.chaos <= matches[0].chaos]
    preferred = next((m for encoding in _PREFERRED_ON_TIE for m in tied if m.encoding == encoding), matches[0])
    return str(preferred)


def normalize_text(text: str) -> str:
    """One newline convention and no stray control characters, so offsets mean the same everywhere."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n").replace("\v", "\n")
    return _CONTROLS.sub("", text)
