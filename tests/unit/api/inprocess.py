"""A server on this catalog, in this process: the app built by ``create_app`` on a catalog given as TOML, its
lifespan run, and an httpx client talking to it through ASGI (no socket). For route tests where the HTTP layer is
what is tested; engines are registered the normal way (the ``scripted`` engine plays the model)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from openglm.api.app import create_app
from openglm.config import Settings


@dataclass
class InProcess:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def state(self) -> Any:
        return self.app.state

    async def usage(self) -> list[Any]:
        """The usage records written so far (settlements in flight awaited), oldest first."""
        await self.state.platform.meter.drain()
        query = (
            "SELECT id, model, endpoint, prompt_tokens, completion_tokens, cost FROM usage_records ORDER BY created_at"
        )
        async with self.state.platform.db.read() as session:
            return list(await session.execute(text(query)))

    async def events(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
        """A streamed POST's server-sent events, decoded (``[DONE]`` left out)."""
        response = await self.client.post(path, json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for line in response.text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: ") :]))
        return events


@asynccontextmanager
async def serving(tmp_path: Path, catalog: str, **settings: Any) -> AsyncIterator[InProcess]:
    """``catalog``: the models.toml to serve; ``settings``: overrides (auth is off on loopback by default)."""
    (tmp_path / "models.toml").write_text(catalog, encoding="utf-8")
    options: dict[str, Any] = {
        "models_file": tmp_path / "models.toml",
        "data_dir": tmp_path / "data",
        "secret_key_file": tmp_path / "config" / "secret.key",
        "sandbox_warm": 0,
        "job_poll_seconds": 0.1,
        "job_heartbeat_seconds": 0.5,
        **settings,
    }
    app = create_app(Settings(**options))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=60) as client:
            yield InProcess(app, client)
