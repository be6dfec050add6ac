"""The web app: the shell page at ``/`` and its assets under ``/app/<version>/`` (``web/assets.py``). Pages are
routed in the browser (``#/chat``, ``#/console`` ...), so the server side is these two routes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...errors import NotFoundError
from ...web.assets import WebAssets

router = APIRouter(include_in_schema=False)

# No inline scripts or styles, nothing from another origin; pictures may be blobs (fetched with the key).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def assets(request: Request) -> WebAssets:
    loaded: WebAssets = request.app.state.web
    return loaded


@router.get("/")
async def shell(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(assets(request).shell, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/app/{version}/{path:path}")
async def asset(version: str, path: str, request: Request) -> Response:
    found = assets(request).get(version, path)
    if found is None:
        raise NotFoundError(f"no web asset {path!r} in version {version!r}")
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"}
    return Response(found.body, media_type=found.content_type, headers=headers)
