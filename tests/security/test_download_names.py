"""Item 7: a file whose name holds CR/LF (written by code in the interpreter, or uploaded) downloads with one
safe Content-Disposition header: no injected header, no dropped connection. Names are cleaned at creation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from tests.integration.conftest import write_catalog

from .conftest import RunningServer, hermes_call, new_key

EVIL = "evil\r\nX-Injected: yes.txt"
CODE = f"open({EVIL!r}, 'w').write('payload')\nprint('written')"

CATALOG = f"""
[[models]]
id = "script-evil"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "written"
reply = "Done."
[[models.options.script]]
when = ""
reply = {hermes_call("python", {"code": CODE})}

[[agents]]
id = "evil-agent"
model = "script-evil"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("download-names")
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0"}
    running = RunningServer(models_file=write_catalog(tmp / "models.toml", CATALOG), log=tmp / "s.log", env=env)
    yield running
    running.stop()


def assert_safe_download(response: httpx.Response, payload: bytes) -> None:
    assert response.status_code == 200 and response.content == payload
    assert "x-injected" not in response.headers
    (disposition,) = response.headers.get_list("content-disposition")
    assert "\r" not in disposition and "\n" not in disposition
    name = unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert name == "evil_X-Injected: yes.txt"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_code_output_named_with_crlf_downloads_safely(server: RunningServer) -> None:
    key = new_key(server, "owner")
    auth = {"Authorization": f"Bearer {key}"}
    body = {
        "model": "evil-agent",
        "stream": True,
        "tools": [{"type": "code_interpreter"}],
        "messages": [{"role": "user", "content": "Write the file."}],
    }
    with httpx.stream(
        "POST", f"{server.url}/api/paas/v4/chat/completions", json=body, headers=auth, timeout=120
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    chunks = [json.loads(line[6:]) for line in lines]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).endswith("Done.")
    files = httpx.get(f"{server.url}/v1/files", params={"purpose": "code-interpreter"}, headers=auth).json()["data"]
    (published,) = [f for f in files if f["filename"].startswith("evil")]
    assert published["filename"] == "evil_X-Injected: yes.txt"  # cleaned when it was created
    for prefix in ("/v1", "/api/paas/v4"):
        download = httpx.get(f"{server.url}{prefix}/files/{published['id']}/content", headers=auth)
        assert_safe_download(download, b"payload")


def test_an_upload_named_with_control_characters_downloads_safely(server: RunningServer) -> None:
    key = new_key(server, "uploader")
    auth = {"Authorization": f"Bearer {key}"}
    # Written by hand: HTTP clients percent-encode control characters in a multipart file name; an attacker's client
    # need not, and the form parser passes a bare LF (and NUL, ESC ...) through into the name.
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\nassistant\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="evil\nX-Injected: yes.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "uploaded\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    uploaded = httpx.post(f"{server.url}/v1/files", content=body, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    record = uploaded.json()
    assert record["filename"] == "evil_X-Injected: yes.txt"
    download = httpx.get(f"{server.url}/v1/files/{record['id']}/content", headers=auth)
    assert_safe_download(download, b"uploaded")
