"""File names and media types as they enter the platform (uploads, code-interpreter outputs, pictures): one clean
form, chosen once at creation, so that every later use (a download's headers, a workspace path, the web app) sees
a name with no control characters, no directories and a bounded length, and a media type that is one."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

MAX_NAME_BYTES = 255  # UTF-8; also what the files table's column holds in characters
FALLBACK = "file"
# Unicode categories never kept in a name: controls (CR, LF, NUL, ESC ...), format characters (bidirectional
# overrides that disguise an extension), line and paragraph separators, unassigned and private-use code points.
_DROPPED = {"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"}


def clean_filename(name: str, fallback: str = FALLBACK) -> str:
    """The last path component of ``name`` (``/`` or ``\\``), NFC, each run of dropped characters one ``_``,
    surrounding spaces gone, cut to ``MAX_NAME_BYTES`` keeping its suffix; ``fallback`` when nothing is left."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rstrip("/").rpartition("/")[2]
    kept: list[str] = []
    for character in base:
        dropped = unicodedata.category(character) in _DROPPED
        if not dropped:
            kept.append(" " if character.isspace() else character)
        elif not kept or kept[-1] != "_":
            kept.append("_")
    cleaned = "".join(kept).strip(" ")
    if cleaned in ("", ".", "..", "_"):
        return fallback
    return _shortened(cleaned)


def _shortened(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    suffix = PurePosixPath(name).suffix
    suffix = suffix if len(suffix.encode()) <= 32 else ""
    stem = name[: len(name) - len(suffix)]
    room = MAX_NAME_BYTES - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore") + suffix


_TOKEN = "A-Za-z0-9!#$&^_.+-"
_MEDIA_TYPE = re.compile(rf"[{_TOKEN}]+/[{_TOKEN}]+")
MAX_MEDIA_TYPE = 100  # the files table's column
OCTET_STREAM = "application/octet-stream"


def clean_media_type(value: str | None) -> str:
    """``type/subtype`` of a client's Content-Type, lowercased, parameters dropped; anything that is not one
    (a control character, a header's worth of text) is ``application/octet-stream``."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if len(media_type) > MAX_MEDIA_TYPE or not _MEDIA_TYPE.fullmatch(media_type):
        return OCTET_STREAM
    return media_type
