from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from zhipuai import ZhipuAI

from .server import RunningServer

MODEL = "default"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(log=tmp_path_factory.mktemp("logs") / "server.log")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0, timeout=120)


@pytest.fixture
async def aclient(server: RunningServer) -> AsyncIterator[openai.AsyncOpenAI]:
    # Per test: an async client is bound to the event loop it first ran on.
    async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def zhipu(server: RunningServer) -> ZhipuAI:
    return ZhipuAI(api_key="testid.testsecret", base_url=f"{server.url}/api/paas/v4", max_retries=0)


def write_catalog(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path
