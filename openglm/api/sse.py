"""Server-sent events exactly as both SDKs read them.

``data: {json}`` lines only (the early zhipuai SDK drops events that carry an
``event:`` field), ``data: [DONE]`` at the end, and an error in the middle of
a stream as one ``data: {"error": ...}`` line followed by ``[DONE]``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

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


def sse_response(chunks: AsyncIterator[BaseModel]) -> StreamingResponse:
    return StreamingResponse(encode_events(chunks), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS)
