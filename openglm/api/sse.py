"""Server-sent events exactly as both SDKs read them.

``data: {json}`` lines only (the early zhipuai SDK drops events that carry an
``event:`` field), ``data: [DONE]`` at the end, and an error in the middle of
a stream as one ``data: {"error": ...}`` line followed by ``[DONE]``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import EngineError, OpenGLMError

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _line(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


async def encode_events(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield _line(chunk.model_dump_json(exclude_none=True))
    except OpenGLMError as exc:
        yield _line(exc.model_body_json())
    except Exception as exc:  # the stream has started: report in-band, never drop the socket
        log.exception("stream failed")
        yield _line(EngineError(f"generation failed: {exc}").model_body_json())
    yield b"data: [DONE]\n\n"


class ClosingStreamingResponse(StreamingResponse):
    """Runs ``on_close`` however the response ends: finished, failed, or abandoned by the client before its
    body iterator was ever started (when that iterator's own ``finally`` never runs)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None] | None, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._on_close is not None:
                self._on_close()


def sse_response(chunks: AsyncIterator[BaseModel], on_close: Callable[[], None] | None = None) -> StreamingResponse:
    return ClosingStreamingResponse(
        encode_events(chunks), on_close, media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS
    )
