"""Many clients at once: continuous batching keeps everyone moving."""

from __future__ import annotations

import asyncio

import httpx
import openai

from .conftest import MODEL
from .server import RunningServer

BAN_EOS = {"0": -100, "2": -100}


async def one_stream(aclient: openai.AsyncOpenAI, i: int) -> tuple[int, str | None]:
    stream = await aclient.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Tell me fact number {i} about the sea."}],
        max_tokens=24,
        stream=True,
        seed=i,
        logit_bias=BAN_EOS,
    )
    pieces, finish = 0, None
    async for chunk in stream:
        for choice in chunk.choices:
            pieces += bool(choice.delta.content)
            finish = choice.finish_reason or finish
    return pieces, finish


async def test_32_concurrent_streams_all_complete(aclient: openai.AsyncOpenAI) -> None:
    results = await asyncio.wait_for(asyncio.gather(*(one_stream(aclient, i) for i in range(32))), timeout=240)
    assert all(finish == "length" for _, finish in results)
    assert all(pieces >= 12 for pieces, _ in results), results


async def test_disconnecting_clients_do_not_disturb_others(server: RunningServer, aclient: openai.AsyncOpenAI) -> None:
    async def abandon() -> None:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream(
                "POST",
                f"{server.url}/v1/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "Write a long poem."}],
                    "max_tokens": 2000,
                    "stream": True,
                    "logit_bias": BAN_EOS,
                },
            ) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    return  # hang up after the first event

    keepers = [asyncio.create_task(one_stream(aclient, i)) for i in range(4)]
    await asyncio.gather(*(abandon() for _ in range(8)))
    results = await asyncio.wait_for(asyncio.gather(*keepers), timeout=120)
    assert all(finish == "length" for _, finish in results)
    # The abandoned generations were cancelled, not left running to 2000 tokens.
    async with httpx.AsyncClient() as http:
        for _ in range(50):
            stats = (await http.get(f"{server.url}/health")).json()["engines"]["smollm2-135m-instruct"]
            if (stats["active"], stats["waiting"]) == (0, 0):
                break
            await asyncio.sleep(0.1)
    assert (stats["active"], stats["waiting"]) == (0, 0)
