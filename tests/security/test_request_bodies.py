"""Item 14 (bodies): a request is authenticated from its headers before its body is read, and bodies are capped per
route while they are read — an unauthenticated client cannot make the server take in 200 MiB to answer 401."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import write_catalog

from .conftest import RunningServer, new_key

MiB = 1024 * 1024
CATALOG = """
[[models]]
id = "script-echo"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "ok"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("request-bodies")
    env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0"}
    running = RunningServer(models_file=write_catalog(tmp / "models.toml", CATALOG), log=tmp / "s.log", env=env)
    yield running
    running.stop()


def answer_before_the_body(
    server: RunningServer,
    path: str,
    headers: dict[str, str],
    *,
    chunked: bool = False,
    sent: int = 64 * 1024,
    length: int = 200 * MiB,
    prefix: bytes = b"",
) -> tuple[int, dict[str, object], float]:
    """Headers that announce a ``length`` body (a huge one by default), only ``sent`` bytes of it, then wait: the
    status and JSON body the server answers with while the rest of the body was never sent, and how long it took."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *[f"{k}: {v}" for k, v in headers.items()]]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    piece = prefix + b"x" * (sent - len(prefix))
    body = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        received = b""
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
            chunk = sock.recv(65536)  # a timeout here: the server is still waiting for the body
            if not chunk:
                break
            received += chunk
    elapsed = time.monotonic() - started
    head, _, payload = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload[: _length(received)]), elapsed


def _length(received: bytes) -> int:
    head = received.split(b"\r\n\r\n", 1)[0].decode(errors="replace").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("path", ["/v1/files", "/api/paas/v4/chat/completions"])
def test_an_unauthenticated_huge_body_is_refused_from_the_headers(
    server: RunningServer, path: str, chunked: bool
) -> None:
    status, body, elapsed = answer_before_the_body(
        server, path, {"Content-Type": "multipart/form-data; boundary=x"}, chunked=chunked
    )
    assert status == 401 and body["error"]["code"] == "1001"  # type: ignore[index]
    assert elapsed < 5  # answered with 64 KiB of 200 MiB sent


def test_a_wrong_key_and_a_user_key_on_the_admin_api_are_refused_before_the_body(server: RunningServer) -> None:
    status, body, _ = answer_before_the_body(server, "/v1/files", {"Authorization": "Bearer nope.nope"})
    assert status == 401
    user = new_key(server, "bodies")
    status, body, _ = answer_before_the_body(server, "/admin/accounts", {"Authorization": f"Bearer {user}"})
    assert status == 403 and body["error"]["code"] == "1220"  # type: ignore[index]


def test_an_authenticated_body_over_its_routes_cap_is_413(server: RunningServer) -> None:
    key = {"Authorization": f"Bearer {new_key(server, 'bodies')}"}
    for path in ("/v1/chat/completions", "/v1/files", "/v1/glms"):  # declared: refused before reading
        status, body, elapsed = answer_before_the_body(server, path, key)
        assert status == 413 and body["error"]["code"] == "1210" and elapsed < 5, (path, body)  # type: ignore[index]
        assert "larger than this API takes" in body["error"]["message"]  # type: ignore[index]
    # Chunked (no length declared): counted while read, refused at the cap (8 MiB for JSON).
    status, body, _ = answer_before_the_body(
        server, "/v1/chat/completions", {**key, "Content-Type": "application/json"}, chunked=True, sent=9 * MiB
    )
    assert status == 413 and body["error"]["code"] == "1210"  # type: ignore[index]
    # Sign-in takes a small body from anyone, nothing more.
    status, body, _ = answer_before_the_body(server, "/v1/auth/login", {"Content-Type": "application/json"})
    assert status == 413


def test_bodies_within_the_caps_still_work(server: RunningServer) -> None:
    key = {"Authorization": f"Bearer {new_key(server, 'bodies')}"}
    small = {"model": "script-echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=small, headers=key, timeout=60)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "ok"
    large = {**small, "messages": [{"role": "user", "content": "x" * (2 * MiB)}]}
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=large, headers=key, timeout=60)
    assert reply.json()["error"]["code"] == "1261"  # 2 MiB got through to the model's context check
    files = {"file": ("big.txt", b"y" * (12 * MiB))}  # an upload may be larger than a JSON body
    uploaded = httpx.post(f"{server.url}/v1/files", data={"purpose": "assistant"}, files=files, headers=key, timeout=60)
    assert uploaded.status_code == 200, uploaded.text
    login = httpx.post(f"{server.url}/v1/auth/login", json={"email": "a@b.c", "password": "wrong-password"})
    assert login.status_code == 401  # reached the route: a wrong sign-in, not a refused body
