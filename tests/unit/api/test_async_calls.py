"""Zhipu's async calls in process: ``/async/chat/completions`` and ``/async/images/generations`` queue a job and
answer at once; ``/async-result/{id}`` gives the same answer a sync call gives, billed once; per account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from openglm.accounts.money import to_nano

from ...fixtures.image_server import ImageServer
from .inprocess import InProcess, serving
from .test_run_routes import ANSWER, CATALOG, USER, WEATHER, streamed_text

FAILING = """
[[models]]
id = "broken"
engine = "scripted"
source = "-"
template = "chatml"
[models.options]
fail_after = 1
[[models.options.script]]
when = ""
reply = "this answer breaks off after its first token"
"""
Z = "/api/paas/v4"


def catalog(images: ImageServer) -> str:
    return CATALOG + FAILING + f'\n[[images]]\nid = "cogview-3"\nengine = "openai"\nsource = "{images.url}"\n'


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[InProcess]:
    images = ImageServer()
    try:
        async with serving(tmp_path, catalog(images)) as running:
            yield running
    finally:
        images.stop()


async def finished(running: InProcess, task_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    for _ in range(300):
        answer = await running.client.get(f"{Z}/async-result/{task_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        if answer.json()["task_status"] != "PROCESSING":
            return dict(answer.json())
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


async def submit(running: InProcess, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    queued = await running.client.post(f"{Z}/async/chat/completions", json=body, headers=headers)
    assert queued.status_code == 200, queued.text
    task = queued.json()
    assert task["task_status"] == "PROCESSING" and task["model"] == body["model"]
    return dict(task)


async def usage_count(running: InProcess) -> int:
    return len(await running.usage())


async def test_an_async_chat_answers_as_the_sync_call_does_and_is_billed_once(platform: InProcess) -> None:
    body = {"model": "echo", "messages": USER, "request_id": "my-request-1"}
    task = await submit(platform, body)
    assert task["request_id"] == "my-request-1"
    result = await finished(platform, task["id"])
    sync = (await platform.client.post(f"{Z}/chat/completions", json=body)).json()
    assert result["task_status"] == "SUCCESS" and result["request_id"] == "my-request-1"
    assert result["choices"] == sync["choices"] and result["usage"] == sync["usage"]
    assert result["choices"][0]["message"]["content"] == ANSWER
    assert await usage_count(platform) == 2  # the task's call and the sync one
    assert (await finished(platform, task["id"])) == result  # read again: the same, not billed again
    assert await usage_count(platform) == 2


async def test_an_async_agent_answer_is_its_stream_folded(platform: InProcess) -> None:
    streamed = await platform.events(f"{Z}/chat/completions", {"model": "talk-agent", "messages": USER, "stream": True})
    result = await finished(platform, (await submit(platform, {"model": "talk-agent", "messages": USER}))["id"])
    assert result["choices"][0]["message"]["content"] == streamed_text(streamed) == ANSWER
    assert result["usage"] == streamed[-1]["usage"]
    calling = {"model": "function-agent", "messages": USER, "tools": [WEATHER]}
    result = await finished(platform, (await submit(platform, calling))["id"])
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {
        "city": "Beijing"
    }


async def test_an_async_glm_chat(platform: InProcess) -> None:
    created = await platform.client.post(
        "/v1/glms", json={"name": "Greeter", "config": {"model": "echo", "instructions": "Greet.", "tools": []}}
    )
    glm = created.json()["id"]
    result = await finished(platform, (await submit(platform, {"model": glm, "messages": USER}))["id"])
    assert result["task_status"] == "SUCCESS" and result["choices"][0]["message"]["content"] == ANSWER


async def test_a_call_that_fails_is_a_fail_with_its_error(platform: InProcess) -> None:
    result = await finished(platform, (await submit(platform, {"model": "broken", "messages": USER}))["id"])
    assert result["task_status"] == "FAIL"
    assert result["error"]["message"] and "choices" not in result


async def test_bad_requests_are_refused_at_submission(platform: InProcess) -> None:
    unknown = await platform.client.post(f"{Z}/async/chat/completions", json={"model": "nope", "messages": USER})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "1211"
    missing = await platform.client.get(f"{Z}/async-result/task-000000000000000000000000")
    assert missing.status_code == 404
    assert await platform.state.jobs.store.list_jobs(kinds=["async_call"]) == []  # nothing was queued


async def test_async_pictures_share_the_result_endpoint(platform: InProcess) -> None:
    queued = await platform.client.post(
        f"{Z}/async/images/generations", json={"model": "cogview-3", "prompt": "a red cat"}
    )
    assert queued.status_code == 200, queued.text
    result = await finished(platform, queued.json()["id"])
    assert result["task_status"] == "SUCCESS"
    url = result["image_result"][0]["url"]
    assert url == result["data"][0]["url"] and "/v1/files/" in url
    picture = await platform.client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


async def test_another_accounts_task_is_not_found(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, auth="on") as running:
        store = running.state.platform.store
        keys = []
        for name in ("alice", "bob"):
            await store.create_account(name, grant=to_nano(Decimal("10")))
            _, secret = await store.create_key(name)
            keys.append({"Authorization": f"Bearer {secret}"})
        task = await submit(running, {"model": "echo", "messages": USER}, keys[0])
        assert (await finished(running, task["id"], keys[0]))["task_status"] == "SUCCESS"
        other = await running.client.get(f"{Z}/async-result/{task['id']}", headers=keys[1])
        assert other.status_code == 404 and other.json()["error"]["message"]
