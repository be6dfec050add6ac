"""Who is calling, and how much they may send, decided from the headers before anything reads the body.

FastAPI reads and parses a route's body (JSON, or a multipart form spooled to disk) before it solves the route's
dependencies, so an unauthenticated client could make the server take in a 200 MiB upload only to answer 401.
This pure ASGI middleware runs first: a request to the API (``/v1``, ``/api/paas/v4``) is authenticated as the
``Caller`` dependency would, one to ``/admin`` as an admin, from the ``Authorization`` header alone; a refusal is
answered at once and the body is never read (the server closes the connection). The principal is kept in the
request's state, so the route's dependency does not authenticate twice. Then the body is capped per route: a
``Content-Length`` over the cap is refused before reading, and a body without one (chunked) is counted while it
is read and refused at the first byte over — 413 in the platform's format either way. An upload whose
``Content-Length`` is more than the account's storage has room for is refused the same way (400, 1210), before
100 MiB are taken in only to be refused by the quota; a chunked one is refused by the route, before its contents
are examined.
"""

from __future__ import annotations

import logging
from typing import Literal

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BodyTooLargeError, InternalError, OpenGLMError
from ..files.store import PURPOSES
from ..untrusted.pool import on_behalf_of

log = logging.getLogger(__name__)

MiB = 1024 * 1024
API_PREFIXES = ("/v1/", "/api/paas/v4/")
PUBLIC = frozenset({"/v1/auth/login", "/api/paas/v4/auth/login"})  # web sign-in: no key yet, by design
# Multipart uploads (the largest purpose plus the form's parts): files, and documents for the file parsing service.
UPLOADS = frozenset(
    f"{prefix}{path}"
    for prefix in ("/v1", "/api/paas/v4")
    for path in ("/files", "/files/parser/create", "/files/parser/sync")
)
PUBLIC_BODY_BYTES = 64 * 1024  # what anyone may send unauthenticated (an email and a password)
FORM_PARTS_BYTES = 64 * 1024  # an upload's form beside the file (boundaries, part headers, purpose, options)
# Over the purposes a client may upload: the platform's own results (a 1 GiB adapter) never come through HTTP.
UPLOAD_BODY_BYTES = max(rules.max_bytes for rules in PURPOSES.values() if rules.uploads) + MiB
CALLER = "openglm.caller"  # request.state keys the dependencies read (api/deps.py)
ADMIN = "openglm.admin"

Guard = Literal["caller", "admin"] | None


def guard_of(path: str) -> Guard:
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    if path.startswith(API_PREFIXES) and path not in PUBLIC:
        return "caller"
    return None


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-body: FastAPI lets HTTPExceptions through its body parsing, and the app's
    handler turns this one into a ``BodyTooLargeError`` answer (``api/errors.py``)."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large(limit))


def too_large(limit: int) -> str:
    size = f"{limit // MiB} MiB" if limit >= MiB else f"{limit // 1024} KiB"
    return f"the request body is larger than this API takes ({size})"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, json_body_bytes: int):
        self.app = app
        self.json_body_bytes = json_body_bytes

    def body_limit(self, method: str, path: str, guard: Guard) -> int:
        if guard is None:
            return PUBLIC_BODY_BYTES
        return UPLOAD_BODY_BYTES if method == "POST" and path in UPLOADS else self.json_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        guard = guard_of(path)
        if guard is not None:
            try:
                await self._authenticate(scope, guard, headers.get("authorization"))
            except OpenGLMError as refusal:
                await _answer(refusal, scope, receive, send)
                return
        limit = self.body_limit(scope["method"], path, guard)
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            await _answer(BodyTooLargeError(too_large(limit)), scope, receive, send)
            return
        if declared is not None and guard == "caller" and scope["method"] == "POST" and path in UPLOADS:
            try:
                await _check_room(scope, declared)
            except OpenGLMError as refusal:
                await _answer(refusal, scope, receive, send)
                return
        caller = scope.get("state", {}).get(CALLER)
        with on_behalf_of(caller.account_id if caller is not None else None):  # the account's share of the parsers
            await self._call_capped(scope, receive, send, limit)

    async def _authenticate(self, scope: Scope, guard: Guard, authorization: str | None) -> None:
        platform = scope["app"].state.platform
        try:
            if guard == "admin":
                scope.setdefault("state", {})[ADMIN] = await platform.admin(authorization)
            else:
                scope.setdefault("state", {})[CALLER] = await platform.caller(authorization)
        except OpenGLMError:
            raise
        except Exception:
            log.exception("authentication failed unexpectedly on %s", scope["path"])
            raise InternalError("internal error; see the server log") from None

    async def _call_capped(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers (a route reading the stream itself)
            if started:
                raise
            await _answer(BodyTooLargeError(str(exc.detail)), scope, receive, send)


async def _check_room(scope: Scope, declared: int) -> None:
    """StorageQuotaError when the account cannot keep a file of the upload's size (its body less the form's other
    parts). Only a cheap early refusal: the file store's own check and charge decide what is kept."""
    principal = scope["state"][CALLER]
    try:
        await scope["app"].state.files.quota.check(principal.account_id, max(1, declared - FORM_PARTS_BYTES))
    except OpenGLMError:
        raise
    except Exception:  # the database is unwell: the route meets the same check and reports it
        log.exception("the storage room of %s could not be checked before an upload", principal.account_id)


async def _answer(error: OpenGLMError, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(error.to_body(), status_code=error.status, headers=error.headers())
    await response(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None
