"""The files API with both SDKs: upload, list, retrieve, content, delete; bad uploads refused whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import openai
import pytest
from zhipuai import ZhipuAI

from .server import RunningServer

JSONL = b'{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": []}\n'


def blob_files(server: RunningServer) -> list[str]:
    blobs = Path(server.env["OPENGLM_DATA_DIR"]) / "blobs"
    return sorted(p.name for p in blobs.iterdir()) if blobs.exists() else []


def test_openai_sdk_round_trip(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    created = client.files.create(file=("train.jsonl", io.BytesIO(JSONL)), purpose="batch")
    assert created.id.startswith("file-") and created.bytes == len(JSONL) and created.filename == "train.jsonl"
    assert client.files.retrieve(created.id).purpose == "batch"
    assert created.id in [f.id for f in client.files.list(purpose="batch").data]
    assert client.files.content(created.id).read() == JSONL
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert created.id not in blob_files(server)  # the bytes went with the record


def test_zhipuai_sdk_upload(server: RunningServer) -> None:
    client = ZhipuAI(api_key="id.secret", base_url=f"{server.url}/api/paas/v4", max_retries=0)
    created = client.files.create(file=("ft.jsonl", io.BytesIO(JSONL)), purpose="fine-tune")
    assert created.id.startswith("file-") and created.purpose == "fine-tune"


@pytest.mark.parametrize(
    ("filename", "data", "purpose", "message"),
    [
        ("empty.jsonl", b"", "batch", "empty"),
        ("notes.txt", b"hello", "batch", ".jsonl"),
        ("bad.jsonl", b'{"ok": 1}\nnot json\n', "fine-tune", "line 2"),
        ("latin.jsonl", b"\xff\xfe", "fine-tune", "UTF-8"),
        ("a.txt", b"x", "teleport", "purpose"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(
    server: RunningServer, filename: str, data: bytes, purpose: str, message: str
) -> None:
    before = blob_files(server)
    response = httpx.post(f"{server.url}/v1/files", files={"file": (filename, data)}, data={"purpose": purpose})
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert blob_files(server) == before


def test_missing_fields_are_400(server: RunningServer) -> None:
    assert httpx.post(f"{server.url}/v1/files", data={"purpose": "batch"}).status_code == 400
    assert httpx.get(f"{server.url}/v1/files/file-nope/content").status_code == 404


def test_files_belong_to_their_account(tmp_path: Path) -> None:
    server = RunningServer(log=tmp_path / "s.log", env={"OPENGLM_AUTH": "on"})
    try:
        for name in ("one", "two"):
            server.cli("accounts", "create", name)
        one, two = (server.cli("keys", "create", "--account", n).strip() for n in ("one", "two"))
        upload = httpx.post(
            f"{server.url}/v1/files",
            files={"file": ("a.jsonl", JSONL)},
            data={"purpose": "batch"},
            headers={"Authorization": f"Bearer {one}"},
        ).json()
        for method, path in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
            other = httpx.request(
                method, f"{server.url}/v1/files/{upload['id']}{path}", headers={"Authorization": f"Bearer {two}"}
            )
            assert other.status_code == 404, (method, path)
        listed = httpx.get(f"{server.url}/v1/files", headers={"Authorization": f"Bearer {two}"}).json()
        assert listed["data"] == [] and listed["has_more"] is False
        assert (
            json.loads(httpx.get(f"{server.url}/v1/files", headers={"Authorization": one}).text)["data"][0]["id"]
            == upload["id"]
        )
    finally:
        server.stop()


def test_download_keeps_a_non_latin_name(server: RunningServer) -> None:
    upload = httpx.post(
        f"{server.url}/v1/files", files={"file": ("报告.txt", "数据".encode())}, data={"purpose": "assistant"}
    ).json()
    response = httpx.get(f"{server.url}/v1/files/{upload['id']}/content")
    assert response.status_code == 200 and response.content == "数据".encode()
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt" in response.headers["content-disposition"]


def test_the_openai_prefix_lists_the_openai_purposes(server: RunningServer) -> None:
    """``/v1/files`` without a purpose lists the files of the purposes the openai SDK declares; a Zhipu-only purpose
    (an assistant attachment) is listed under /api/paas/v4, or under /v1 when asked for by name."""
    batch = httpx.post(f"{server.url}/v1/files", files={"file": ("b.jsonl", JSONL)}, data={"purpose": "batch"}).json()
    note = httpx.post(f"{server.url}/v1/files", files={"file": ("n.txt", b"n")}, data={"purpose": "assistant"}).json()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    listed = client.files.list(limit=100).data
    assert batch["id"] in [f.id for f in listed] and note["id"] not in [f.id for f in listed]
    assert {f.purpose for f in listed} <= {"fine-tune", "fine-tune-results", "batch", "batch_output"}
    assert note["id"] in [f.id for f in client.files.list(purpose="assistant", limit=100).data]
    zhipu = httpx.get(f"{server.url}/api/paas/v4/files", params={"limit": 100}).json()["data"]
    assert {batch["id"], note["id"]} <= {f["id"] for f in zhipu}
