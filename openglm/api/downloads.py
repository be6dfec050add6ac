"""Serving a stored file to its owner: the one place a download's headers are built."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from ..files.names import FALLBACK, clean_media_type


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266 for any name, even one stored before names were cleaned: ``filename`` is an ASCII fallback
    (controls, non-ASCII, quotes, backslashes and ``%`` each ``_``, so no client can misread it and no header can
    be broken), ``filename*`` the exact name as RFC 5987 UTF-8 percent-encoding."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in filename) or FALLBACK
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download(filename: str, data: bytes, media_type: str) -> Response:
    """A file as an attachment. The browser must not sniff it into HTML nor run it as a page of this origin (it
    is the user's content, on the web app's origin): ``nosniff`` and a sandboxing CSP."""
    headers = {
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }
    return Response(data, media_type=clean_media_type(media_type), headers=headers)
