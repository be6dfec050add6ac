"""The platform served from inside this process: the app on a loopback port under uvicorn, for tools that drive
it over HTTP and also reach into its services (the All Tools data generator records the agent's rounds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..config import Settings
from .app import create_app


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    """The app serving ``settings.host:port`` until the block ends; its URL and its ``app.state``."""
    import uvicorn

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the platform did not start")
        await asyncio.sleep(0.1)
    try:
        yield f"http://{settings.host}:{settings.port}", app.state
    finally:
        server.should_exit = True
        await serving
