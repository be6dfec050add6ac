"""Helpers shared by the route modules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def json_response(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True), status_code=status_code)


CLIENT_CLOSED = 499  # nginx's status for "the client went away"


async def until_disconnect(request: Request, work: Awaitable[BaseModel]) -> Response:
    """Run ``work`` and answer with it; if the client goes away first, cancel it so its slots are freed."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                return json_response(task.result())
            if await request.is_disconnected():
                return Response(status_code=CLIENT_CLOSED)
    finally:
        if not task.done():
            task.cancel()
