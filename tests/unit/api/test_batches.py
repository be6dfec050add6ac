"""Batches in process on scripted models: lines run and answered in the reference's file format, checked line by
line at creation, cancelled, stopped by an empty balance, billed at the batch price, and carried on across a
restart with every line answered (and billed) once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from openglm.accounts.money import to_nano

from .inprocess import InProcess, serving

ANSWER = "A batched answer."
CATALOG = f"""
[[models]]
id = "echo"
engine = "scripted"
source = "-"
template = "chatml"
context_length = 512
[models.prices]
input = 1
output = 2
[[models.options.script]]
when = ""
reply = "{ANSWER}"

[[models]]
id = "slow"
engine = "scripted"
source = "-"
template = "chatml"
[models.options]
pace = 0.05
[[models.options.script]]
when = ""
reply = "{ANSWER}"
"""


def line(custom_id: str, content: str = "Say hello.", model: str = "echo", **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[Any]) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with serving(tmp_path, CATALOG, batch_concurrency=2) as running:
        yield running


async def upload(running: InProcess, data: bytes, headers: dict[str, str] | None = None) -> str:
    response = await running.client.post(
        "/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def create(
    running: InProcess, lines: list[Any], headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    file_id = await upload(running, jsonl(lines), headers)
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **extra}
    response = await running.client.post("/v1/batches", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def ended(running: InProcess, batch_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    for _ in range(600):
        batch = (await running.client.get(f"/api/paas/v4/batches/{batch_id}", headers=headers)).json()
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return dict(batch)
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not end: {batch}")


async def file_lines(running: InProcess, file_id: str | None, headers: dict[str, str] | None = None) -> list[Any]:
    if file_id is None:
        return []
    content = await running.client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert content.status_code == 200
    return [json.loads(x) for x in content.text.splitlines()]


async def usage(running: InProcess) -> list[Any]:
    return await running.usage()


async def test_a_batch_answers_each_line_in_the_reference_format(platform: InProcess) -> None:
    too_long = "word " * 600  # past the model's 512-token context: refused when it runs
    lines = [line("a"), line("b", "Another."), line("long", too_long), line("c", temperature=0)]
    batch = await create(platform, lines, metadata={"job": "nightly"})
    assert batch["status"] in ("validating", "in_progress") and batch["metadata"] == {"job": "nightly"}
    assert batch["request_counts"] == {"total": 4, "completed": 0, "failed": 0}
    done = await ended(platform, batch["id"])
    assert done["status"] == "completed" and done["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    assert done["completed_at"] >= done["finalizing_at"] >= done["in_progress_at"] >= done["created_at"]
    output = await file_lines(platform, done["output_file_id"])
    assert sorted(x["custom_id"] for x in output) == ["a", "b", "c"]
    for entry in output:
        assert entry["id"].startswith("batch_req_") and entry["error"] is None
        assert entry["response"]["status_code"] == 200
        assert entry["response"]["body"]["choices"][0]["message"]["content"] == ANSWER
    [failure] = await file_lines(platform, done["error_file_id"])
    assert failure["custom_id"] == "long" and failure["response"]["status_code"] == 400
    assert failure["response"]["body"]["error"]["code"]
    assert done["usage"]["input_tokens"] == sum(e["response"]["body"]["usage"]["prompt_tokens"] for e in output)
    records = await usage(platform)
    assert len(records) == 3 and {r.endpoint for r in records} == {"chat.completions"}
    files = (await platform.client.get("/v1/files", params={"limit": 100})).json()["data"]
    assert {f["purpose"] for f in files if f["id"] in (done["output_file_id"], done["error_file_id"])} == {
        "batch_output"
    }


async def test_the_input_is_checked_line_by_line(platform: InProcess) -> None:
    lines: list[Any] = [
        line("a"),
        line("a"),  # 2: custom_id again
        {**line("u"), "url": "/v1/embeddings"},  # 3: another endpoint
        line("s", stream=True),  # 4: streamed
        line("m", model="slow"),  # 5: another model
        {"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}},  # 6
        line("t", temperature="hot"),  # 7: not a valid request body
    ]  # (a line that is not JSON is refused by the upload itself)
    batch = await create(platform, lines)
    assert batch["status"] == "failed" and batch["failed_at"] and batch["output_file_id"] is None
    by_line = {e["line"]: e for e in batch["errors"]["data"]}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7]
    assert by_line[2]["code"] == "duplicate_custom_id" and by_line[3]["code"] == "invalid_url"
    assert by_line[4]["param"] == "body.stream" and by_line[5]["code"] == "mismatched_model"
    assert by_line[6]["param"] == "method" and by_line[7]["param"] == "body.temperature"
    unknown = await create(platform, [line("a", model="nope")])
    assert unknown["status"] == "failed" and unknown["errors"]["data"][0]["code"] == "model_not_found"
    assert await usage(platform) == []


async def test_bad_requests_are_refused(platform: InProcess) -> None:
    file_id = await upload(platform, jsonl([line("a")]))
    cases = [
        ({"input_file_id": file_id, "endpoint": "/v1/images/generations"}, "endpoint"),
        (
            {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "1h"},
            "completion_window",
        ),
        ({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions"}, "input_file_id"),
    ]
    for body, field in cases:
        refused = await platform.client.post("/v1/batches", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["message"].startswith(field), refused.text
    assert (await platform.client.get("/v1/batches/batch_nope")).status_code == 404
    zhipu = await platform.client.post(
        "/api/paas/v4/batches", json={"input_file_id": file_id, "endpoint": "/v4/chat/completions"}
    )
    assert zhipu.status_code == 200 and zhipu.json()["endpoint"] == "/v1/chat/completions"


async def test_cancelling_keeps_the_finished_lines_and_bills_only_those(platform: InProcess) -> None:
    batch = await create(platform, [line(f"l{i}", model="slow") for i in range(30)])
    while (await platform.client.get(f"/v1/batches/{batch['id']}")).json()["request_counts"]["completed"] < 2:
        await asyncio.sleep(0.05)
    cancelling = (await platform.client.post(f"/v1/batches/{batch['id']}/cancel")).json()
    assert cancelling["status"] in ("cancelling", "cancelled") and cancelling["cancelling_at"]
    done = await ended(platform, batch["id"])
    assert done["status"] == "cancelled" and done["cancelled_at"]
    completed = done["request_counts"]["completed"]
    assert 2 <= completed < 30 and done["request_counts"]["failed"] == 30 - completed
    unrun = await file_lines(platform, done["error_file_id"])
    assert len(unrun) == 30 - completed and {e["error"]["code"] for e in unrun} == {"batch_cancelled"}
    assert len(await file_lines(platform, done["output_file_id"])) == len(await usage(platform)) == completed
    again = await platform.client.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 400


async def test_batch_lines_pay_half_and_an_empty_balance_stops_the_batch(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, auth="on", batch_concurrency=1) as running:
        store = running.state.platform.store
        await store.create_account("acme", grant=to_nano(Decimal("0.2")))
        _, secret = await store.create_key("acme")
        key = {"Authorization": f"Bearer {secret}"}
        sync = await running.client.post("/v1/chat/completions", json=line("x")["body"], headers=key)
        assert sync.status_code == 200
        batch = await create(running, [line(f"l{i}") for i in range(40)], key)
        done = await ended(running, batch["id"], key)
        assert done["status"] == "failed" and done["errors"]["data"][-1]["code"] == "1113"
        completed = done["request_counts"]["completed"]
        assert 0 < completed < 40
        unrun = await file_lines(running, done["error_file_id"], key)
        assert len(unrun) == 40 - completed and {e["error"]["code"] for e in unrun} == {"1113"}
        records = await usage(running)
        assert len(records) == 1 + completed
        first_sync, *lines = records
        for record in lines:  # the same tokens as the sync call, at half its price
            assert (record.prompt_tokens, record.completion_tokens) == (
                first_sync.prompt_tokens,
                first_sync.completion_tokens,
            )
            assert record.cost * 2 == first_sync.cost


async def test_a_batch_goes_on_after_a_restart_and_answers_each_line_once(tmp_path: Path) -> None:
    lines = [line(f"l{i}", model="slow") for i in range(12)]
    async with serving(tmp_path, CATALOG, batch_concurrency=2) as first:
        batch = await create(first, lines)
        while (await first.client.get(f"/v1/batches/{batch['id']}")).json()["request_counts"]["completed"] < 3:
            await asyncio.sleep(0.05)
    async with serving(tmp_path, CATALOG, batch_concurrency=2) as second:
        done = await ended(second, batch["id"])
        assert done["status"] == "completed" and done["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
        output = await file_lines(second, done["output_file_id"])
        assert sorted(e["custom_id"] for e in output) == sorted(x["custom_id"] for x in lines)
        # Every answered line billed once as answered; a line cut off by the stop (at most one per slot) was billed,
        # as cancelled, for what it had generated — all of it when the stop came after its last token.
        await usage(second)  # settlements in flight written
        query = "SELECT status, count(*) FROM usage_records GROUP BY status"
        async with second.state.platform.db.read() as session:
            counts = dict(tuple(row) for row in await session.execute(text(query)))
        assert counts.get("succeeded") == 12 and counts.get("cancelled", 0) <= 2, counts


async def test_batches_are_listed_per_account(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, auth="on") as running:
        store = running.state.platform.store
        keys = []
        for name in ("alice", "bob"):
            await store.create_account(name, grant=to_nano(Decimal("100")))
            keys.append({"Authorization": f"Bearer {(await store.create_key(name))[1]}"})
        made = [await create(running, [line("a")], keys[0]) for _ in range(3)]
        page = (await running.client.get("/v1/batches", params={"limit": 2}, headers=keys[0])).json()
        assert [b["id"] for b in page["data"]] == [made[2]["id"], made[1]["id"]] and page["has_more"] is True
        rest = (await running.client.get("/v1/batches", params={"after": page["last_id"]}, headers=keys[0])).json()
        assert [b["id"] for b in rest["data"]] == [made[0]["id"]] and rest["has_more"] is False
        assert (await running.client.get("/v1/batches", headers=keys[1])).json()["data"] == []
        for path in (f"/v1/batches/{made[0]['id']}", f"/v1/batches/{made[0]['id']}/cancel"):
            other = await running.client.request("POST" if "cancel" in path else "GET", path, headers=keys[1])
            assert other.status_code == 404
        for batch in made:
            await ended(running, batch["id"], keys[0])


async def test_a_batch_whose_output_does_not_fit_the_storage_quota_fails_saying_so(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, storage_quota_mb=1) as running:
        batch_lines = [line(f"l{i}") for i in range(3)]
        file_id = await upload(running, jsonl(batch_lines))
        used = sum(len(json.dumps(x)) + 1 for x in batch_lines)
        filler = await running.client.post(
            "/v1/files", files={"file": ("fill.txt", b"x" * (1024 * 1024 - used - 100))}, data={"purpose": "assistant"}
        )
        assert filler.status_code == 200, filler.text
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
        batch = (await running.client.post("/v1/batches", json=body)).json()
        done = await ended(running, batch["id"])
        assert done["status"] == "failed" and done["output_file_id"] is None
        assert "could not be kept" in done["errors"]["data"][-1]["message"]


async def test_a_batch_cancelled_before_it_ran_lists_every_line_as_not_run(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, batch_workers=0, job_workers=0) as running:  # nothing claims its job
        batch = await create(running, [line(f"l{i}") for i in range(3)])
        cancelled = (await running.client.post(f"/v1/batches/{batch['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["request_counts"] == {"total": 3, "completed": 0, "failed": 3}
        unrun = await file_lines(running, cancelled["error_file_id"])
        assert [e["custom_id"] for e in unrun] == ["l0", "l1", "l2"]
        assert {e["error"]["code"] for e in unrun} == {"batch_cancelled"}


async def test_a_finalize_cut_short_is_finished_by_the_next_attempt(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, batch_workers=0, job_workers=0) as running:
        batch = await create(running, [line("a")])
        service = running.state.batches
        await service.store.move(batch["id"], "finalizing")  # as a process that died while writing the files
        await service.run(batch["id"])  # the job's next attempt
        done = (await running.client.get(f"/v1/batches/{batch['id']}")).json()
        assert done["status"] == "completed" and done["completed_at"]
        await service.run(batch["id"])  # and once more: nothing changes
        assert (await running.client.get(f"/v1/batches/{batch['id']}")).json() == done


async def test_a_batch_whose_key_was_disabled_meanwhile_does_not_spend(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, auth="on", batch_workers=0, job_workers=0) as running:
        store = running.state.platform.store
        await store.create_account("acme", grant=to_nano(Decimal("10")))
        key, secret = await store.create_key("acme")
        batch = await create(running, [line("a"), line("b")], {"Authorization": f"Bearer {secret}"})
        await store.set_key_status(key.id, "disabled")
        await running.state.batches.run(batch["id"])  # the job, once it runs
        done = await running.state.batches.get(
            await running.state.platform.authenticator.deferred(key.account_id, None, "sync", None), batch["id"]
        )
        assert done.status == "failed" and "can no longer be used" in done.errors.data[-1].message
        assert done.request_counts.completed == 0 and await usage(running) == []
