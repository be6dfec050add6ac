"""Request dependencies: who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from ..accounts.auth import Principal
from .request_guard import ADMIN, CALLER


async def caller(request: Request) -> Principal:
    """The principal the request guard authenticated from the headers (before the body was read), else now."""
    principal: Principal | None = request.scope.get("state", {}).get(CALLER)
    if principal is None:
        principal = await request.app.state.platform.caller(request.headers.get("authorization"))
    return principal


async def admin(request: Request) -> Principal:
    principal: Principal | None = request.scope.get("state", {}).get(ADMIN)
    if principal is None:
        principal = await request.app.state.platform.admin(request.headers.get("authorization"))
    return principal


Caller = Annotated[Principal, Depends(caller)]
