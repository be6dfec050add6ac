"""A streamed response runs its close hook however it ends, also when its body was never started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from openglm.api.sse import sse_response


class Chunk(BaseModel):
    n: int


def chunks(started: list[bool]) -> AsyncIterator[BaseModel]:
    async def generate() -> AsyncIterator[BaseModel]:
        started.append(True)
        for n in range(3):
            yield Chunk(n=n)

    return generate()


async def never_disconnects() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_close_hook_runs_after_a_complete_stream() -> None:
    sent: list[dict[str, Any]] = []
    closed: list[bool] = []
    response = sse_response(chunks([]), on_close=lambda: closed.append(True))

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http", "asgi": {"spec_version": "2.4"}}, never_disconnects, send)
    bodies = b"".join(m.get("body", b"") for m in sent)
    assert bodies.count(b"data: ") == 4 and bodies.endswith(b"data: [DONE]\n\n")
    assert closed == [True]


async def test_close_hook_runs_when_the_client_left_before_the_body_started() -> None:
    started: list[bool] = []
    closed: list[bool] = []
    response = sse_response(chunks(started), on_close=lambda: closed.append(True))

    async def send(message: dict[str, Any]) -> None:
        raise OSError("connection reset")  # the client is gone before the headers went out

    with pytest.raises(ClientDisconnect):
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, never_disconnects, send)
    assert started == []  # the body iterator never ran, so its own finally could not have settled anything
    assert closed == [True]
