"""Zhipu's file parsing service through the routes, in process: a task created, run by the job system and read as
text or as a download link; the sync form; what is refused at once (images, unknown tool types) and what fails as
a task (a document that cannot be read); another account's task is not found; the upload is removed once parsed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from openglm.accounts.money import to_nano

from ..knowledge.documents import make_pdf
from .inprocess import InProcess, serving

CATALOG = """
[[models]]
id = "echo"
engine = "scripted"
source = "-"
template = "chatml"
"""
NOTES = b"# Kite notes\n\nKites fly when the wind lifts the sail.\n\n## Lines\n\nKeep the line taut.\n"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with serving(tmp_path, CATALOG) as running:
        yield running


async def finished(running: InProcess, task_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    for _ in range(200):
        response = await running.client.get(f"/api/paas/v4/files/parser/result/{task_id}/text", headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["status"] != "processing":
            return dict(response.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the task did not finish")


async def create(
    running: InProcess, name: str, data: bytes, headers: dict[str, str] | None = None, **form: str
) -> dict[str, Any]:
    response = await running.client.post(
        "/api/paas/v4/files/parser/create",
        files={"file": (name, data)},
        data={"tool_type": "lite", **form},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_task_is_parsed_and_read_as_text_and_as_a_link(platform: InProcess) -> None:
    created = await create(platform, "notes", NOTES, file_type="MD")  # no suffix: the file type names it
    assert created["success"] is True and created["task_id"].startswith("parse")
    done = await finished(platform, created["task_id"])
    assert done["status"] == "succeeded" and "Kites fly when the wind lifts the sail." in done["content"]
    link = (await platform.client.get(f"/v1/files/parser/result/{created['task_id']}/download_link")).json()
    assert link["content"] is None and link["parsing_result_url"].startswith("http://127.0.0.1:8000/v1/files/")
    text = await platform.client.get(link["parsing_result_url"].removeprefix("http://127.0.0.1:8000"))
    assert text.status_code == 200 and text.text == done["content"]
    kept = (await platform.client.get("/api/paas/v4/files", params={"purpose": "file-parser"})).json()["data"]
    assert [f["filename"] for f in kept] == ["notes.txt"]  # the text kept; the upload removed once parsed


async def test_the_sync_form_answers_with_the_text(platform: InProcess) -> None:
    pdf = make_pdf([["Page one says hello."], ["Page two says goodbye."]])
    response = await platform.client.post(
        "/v1/files/parser/sync", files={"file": ("report.pdf", pdf)}, data={"tool_type": "prime-sync"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "succeeded" and "Page two says goodbye." in answer["content"]
    assert answer["parsing_result_url"] and answer["task_id"].startswith("parse-sync-")


async def test_what_is_refused_at_once_and_what_fails_as_a_task(platform: InProcess) -> None:
    image = await platform.client.post(
        "/api/paas/v4/files/parser/create", files={"file": ("scan.png", b"\x89PNG....")}, data={"tool_type": "lite"}
    )
    assert image.status_code == 400 and "OCR" in image.json()["error"]["message"]
    tool = await platform.client.post(
        "/api/paas/v4/files/parser/create", files={"file": ("a.txt", b"hi")}, data={"tool_type": "magic"}
    )
    assert tool.status_code == 400 and "tool_type" in tool.json()["error"]["message"]
    legacy = await platform.client.post(
        "/api/paas/v4/files/parser/create", files={"file": ("a.doc", b"\xd0\xcf")}, data={"tool_type": "lite"}
    )
    assert legacy.status_code == 400 and "docx" in legacy.json()["error"]["message"]
    broken = await create(platform, "broken.pdf", b"%PDF-1.7 this is not a PDF at all")
    failed = await finished(platform, broken["task_id"])
    assert failed["status"] == "failed" and failed["message"] and failed["content"] is None
    format_type = await platform.client.get(f"/v1/files/parser/result/{broken['task_id']}/html")
    assert format_type.status_code == 400
    assert (await platform.client.get("/v1/files/parser/result/parse-nope/text")).status_code == 404
    assert (await platform.client.get("/api/paas/v4/files", params={"purpose": "file-parser"})).json()["data"] == []


async def test_another_account_s_task_is_not_found(tmp_path: Path) -> None:
    async with serving(tmp_path, CATALOG, auth="on") as running:
        store = running.state.platform.store
        keys = {}
        for name in ("alice", "bob"):
            await store.create_account(name, grant=to_nano(Decimal("1")))
            keys[name] = {"Authorization": f"Bearer {(await store.create_key(name))[1]}"}
        created = await create(running, "notes.md", NOTES, keys["alice"])
        assert (await finished(running, created["task_id"], keys["alice"]))["status"] == "succeeded"
        other = await running.client.get(f"/v1/files/parser/result/{created['task_id']}/text", headers=keys["bob"])
        assert other.status_code == 404
