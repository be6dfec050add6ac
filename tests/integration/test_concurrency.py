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
    stats = await wait_idle(server)
    assert (stats["active"], stats["waiting"]) == (0, 0)


async def wait_idle(server: RunningServer, model: str = "smollm2-135m-instruct") -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            stats: dict[str, int] = (await http.get(f"{server.url}/health")).json()["engines"][model]
            if (stats["active"], stats["waiting"]) == (0, 0):
                break
            await asyncio.sleep(0.1)
    return stats


async def test_non_streaming_client_that_gives_up_frees_its_sequence(server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long poem."}],
        "max_tokens": 4000,
        "logit_bias": BAN_EOS,
    }
    async with httpx.AsyncClient(timeout=1.0) as http:
        try:
            await http.post(f"{server.url}/v1/chat/completions", json=body)
        except httpx.TimeoutException:
            pass
        else:
            raise AssertionError("4000 tokens cannot arrive within a second here")
    stats = await wait_idle(server)
    assert (stats["active"], stats["waiting"]) == (0, 0), "the abandoned generation was cancelled"
