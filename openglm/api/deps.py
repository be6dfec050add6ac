"""Request dependencies: who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from ..accounts.auth import Principal


async def caller(request: Request) -> Principal:
    principal: Principal = await request.app.state.platform.caller(request.headers.get("authorization"))
    return principal


async def admin(request: Request) -> Principal:
    principal: Principal = await request.app.state.platform.admin(request.headers.get("authorization"))
    return principal


Caller = Annotated[Principal, Depends(caller)]
