"""Batches through the real server with the unmodified openai and zhipuai SDKs: create, retrieve, list, cancel,
output files downloaded and parsed, on the embedded default model and embedding model."""

from __future__ import annotations

import io
import json
import secrets
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import BatchRequestCounts
from zhipuai import ZhipuAI

from ..databases import postgres_database
from .server import RunningServer

CHAT = "default"
EMBEDDING = "all-minilm-l6-v2"
LINES = 16  # the replica test's batch
NO_END = {"0": -100, "2": -100}  # the default model's end tokens banned: each answer runs to max_tokens


def chat_lines(n: int, url: str = "/v1/chat/completions", max_tokens: int = 4) -> bytes:
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": url,
            "body": {
                "model": CHAT,
                "messages": [{"role": "user", "content": f"Count to {i}."}],
                "max_tokens": max_tokens,
                "logit_bias": NO_END,
            },
        }
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait_ended(get: Any, batch_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = get(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} did not end in {timeout} s: {batch.status}, {batch.request_counts}")


def test_openai_sdk_batch_of_chat_completions(client: openai.OpenAI) -> None:
    upload = client.files.create(file=("in.jsonl", io.BytesIO(chat_lines(3))), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"k": "v"}
    )
    assert batch.object == "batch" and batch.status in ("validating", "in_progress") and batch.metadata == {"k": "v"}
    done = wait_ended(client.batches.retrieve, batch.id)
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.output_file_id and done.error_file_id is None and done.usage and done.usage.output_tokens == 12
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in lines) == ["q0", "q1", "q2"]
    assert all(
        x["response"]["status_code"] == 200 and x["response"]["body"]["usage"]["completion_tokens"] == 4 for x in lines
    )
    assert batch.id in [b.id for b in client.batches.list(limit=100)]
    assert done.output_file_id in [f.id for f in client.files.list(purpose="batch_output").data]


def test_openai_sdk_batch_of_embeddings(client: openai.OpenAI) -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": EMBEDDING, "input": text}}
        for i, text in enumerate(["a cat", "a dog"])
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = client.files.create(file=("emb.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait_ended(client.batches.retrieve, batch.id)
    assert done.status == "completed" and done.request_counts and done.request_counts.completed == 2
    assert done.output_file_id is not None
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert all(len(x["response"]["body"]["data"][0]["embedding"]) == 384 for x in out)


def test_openai_sdk_cancels_a_batch(client: openai.OpenAI) -> None:
    upload = client.files.create(file=("many.jsonl", io.BytesIO(chat_lines(60, max_tokens=48))), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    done = wait_ended(client.batches.retrieve, batch.id)
    assert done.status == "cancelled" and done.request_counts and done.request_counts.completed < 60
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)


@pytest.mark.parametrize("endpoint", ["/v4/chat/completions", "/v1/chat/completions"])
def test_zhipuai_sdk_batches(zhipu: ZhipuAI, server: RunningServer, endpoint: str) -> None:
    url = "/v4/chat/completions" if endpoint.startswith("/v4") else "/v1/chat/completions"
    upload = zhipu.files.create(file=("in.jsonl", chat_lines(2, url=url)), purpose="batch")
    batch = zhipu.batches.create(
        input_file_id=upload.id,
        endpoint=endpoint,
        completion_window="24h",
        auto_delete_input_file=True,  # type: ignore[arg-type]
    )
    done = wait_ended(zhipu.batches.retrieve, batch.id)
    assert done.status == "completed" and done.output_file_id
    content = zhipu.files.content(done.output_file_id).content
    assert len(content.decode().splitlines()) == 2
    listed = zhipu.batches.list(limit=50)
    assert batch.id in [b.id for b in listed.data]
    gone = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError):  # auto_delete_input_file: the input file is removed once it ended
        gone.files.retrieve(upload.id)


def log_tail(log: Path, lines: int = 40) -> str:
    """A server log's last lines, without the test's own polling."""
    kept = [x for x in log.read_text(errors="replace").splitlines() if "GET /v1/batches" not in x]
    return "\n".join(kept[-lines:])


def test_a_batch_goes_on_when_its_replica_dies(tmp_path: Path) -> None:
    """Two replicas on one PostgreSQL: the one running a batch is killed (SIGKILL, no release); after its job's
    lease runs out the other claims it and answers the lines the first had not, each line once in the output.
    Short lines: on a loaded 2-core machine the second replica's lines are what takes the time."""
    with postgres_database() as url:
        env = {
            "OPENGLM_DATABASE_URL": url,
            "OPENGLM_SECRET_KEY": secrets.token_hex(16),
            "OPENGLM_JOB_LEASE_SECONDS": "4",
            "OPENGLM_JOB_HEARTBEAT_SECONDS": "1",
            "OPENGLM_JOB_POLL_SECONDS": "0.5",
            "OPENGLM_BATCH_CONCURRENCY": "2",
            "OPENGLM_SANDBOX_WARM": "0",
        }
        # One data directory (files' blobs) for both, as replicas share a blob store.
        env["OPENGLM_DATA_DIR"] = str(tmp_path / "shared")
        first = RunningServer(log=tmp_path / "a.log", env=env)
        second: RunningServer | None = None
        try:
            a = openai.OpenAI(base_url=f"{first.url}/v1", api_key="unused", max_retries=0)
            upload = a.files.create(file=("in.jsonl", io.BytesIO(chat_lines(LINES, max_tokens=12))), purpose="batch")
            batch = a.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
            while (
                a.batches.retrieve(batch.id).request_counts or BatchRequestCounts(total=0, completed=0, failed=0)
            ).completed < 2:
                time.sleep(0.2)
            first.process.kill()
            first.process.wait()
            second = RunningServer(log=tmp_path / "b.log", env=env)
            b = openai.OpenAI(base_url=f"{second.url}/v1", api_key="unused", max_retries=0)
            try:
                done = wait_ended(b.batches.retrieve, batch.id)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the second replica's log ends:\n{log_tail(tmp_path / 'b.log')}") from None
            assert done.status == "completed" and done.request_counts is not None
            assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
            assert "attempt 2" in (tmp_path / "b.log").read_text()  # the second replica ran the rest
            assert done.output_file_id is not None
            lines = [json.loads(x) for x in b.files.content(done.output_file_id).text.splitlines()]
            assert sorted(x["custom_id"] for x in lines) == sorted(f"q{i}" for i in range(LINES))
        finally:
            first.stop()
            if second is not None:
                second.stop()
