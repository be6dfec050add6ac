"""Zhipu's file parsing service through the real server with the unmodified zhipuai SDK: ``file_parser.create``
and ``file_parser.content`` (text and download link; the SDK hands back the body's bytes, JSON to decode)."""

from __future__ import annotations

import io
import json
import time

import httpx
from zhipuai import ZhipuAI

from .server import RunningServer

NOTES = b"# Kite notes\n\nKites fly when the wind lifts the sail.\n"


def test_the_zhipu_sdk_parses_a_document(zhipu: ZhipuAI, server: RunningServer) -> None:
    task = zhipu.file_parser.create(file=("notes.md", io.BytesIO(NOTES)), file_type="MD", tool_type="lite")
    assert task.success and task.task_id
    deadline = time.monotonic() + 60
    while True:
        result = json.loads(zhipu.file_parser.content(task.task_id, format_type="text").content)
        if result["status"] != "processing" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result["status"] == "succeeded" and "Kites fly when the wind lifts the sail." in result["content"]
    link = json.loads(zhipu.file_parser.content(task.task_id, format_type="download_link").content)
    link = link["parsing_result_url"]
    assert httpx.get(link, headers={"Authorization": "Bearer testid.testsecret"}).text == result["content"]
    assert link.startswith(server.url)
