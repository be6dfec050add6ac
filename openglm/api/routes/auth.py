"""Web sign-in (both prefixes): an email and password for a session key, who the credentials are, and logout."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.accounts import LoginIn, LoginOut, SessionOut, SessionUser
from ..deps import Caller
from ..deps import platform as _platform
from ._common import both_prefixes, json_response

router = APIRouter(tags=["auth"])


@both_prefixes(router, "POST", "/auth/login")
async def login(body: LoginIn, request: Request) -> Response:
    session = await _platform(request).signin.login(body.email, body.password)
    user = SessionUser(id=session.user.id, email=session.user.email, name=session.user.name)
    assert session.key.expires_at is not None
    out = LoginOut(
        key=session.full_key,
        key_id=session.key.id,
        expires_at=session.key.expires_at,
        account_id=session.key.account_id,
        user=user,
    )
    return json_response(out)


@both_prefixes(router, "GET", "/auth/session")
async def current_session(request: Request, principal: Caller) -> Response:
    platform = _platform(request)
    user = None
    if principal.user_id is not None:
        found = await platform.store.user(principal.user_id)
        user = SessionUser(id=found.id, email=found.email, name=found.name)
    auth: Literal["on", "off"] = "off" if platform.local is not None else "on"
    return json_response(SessionOut(auth=auth, account_id=principal.account_id, key_id=principal.key_id, user=user))


@both_prefixes(router, "POST", "/auth/logout")
async def logout(request: Request, principal: Caller) -> Response:
    await _platform(request).signin.logout(principal.account_id, principal.key_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")
