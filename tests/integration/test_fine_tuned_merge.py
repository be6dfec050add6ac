"""Merging a fine-tuned model through the real server: ``POST/GET/DELETE /fine_tuning/fine_tuned_models/{model}/merge``
(an OpenGLM extension) as a job, the model then served from its merged GGUF by an engine of its own, and privacy.

The fine-tune is made by ``tests/fixtures/lora_trainer.py`` (a real LoRA adapter for the default model, random but
meaningful, in one "step"), loaded through OPENGLM_PLUGINS; the merge is the real one (a spawned process, llama.cpp).
The owner's calls go through ``openglm.tuning.merge_client`` (what a CLI calls), the other account's as raw HTTP.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from openglm.tuning.merge_client import (
    MergeRequestFailed,
    merge_path,
    merge_status,
    request_merge,
    unmerge,
    wait_for_merge,
)

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG
from .server import RunningServer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("merge")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            "OPENGLM_PLUGINS": "tests.fixtures.lora_trainer",
            "OPENGLM_FINE_TUNING_TRAINER": "test-lora",
            "OPENGLM_FINE_TUNING_THREADS": "2",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
            "OPENGLM_JOB_HEARTBEAT_SECONDS": "0.5",
        },
    )
    yield running
    running.stop()


class Account:
    def __init__(self, server: RunningServer, name: str):
        server.cli("accounts", "create", name, "--grant", "100")
        self.key = server.cli("keys", "create", "--account", name).strip()
        self.server = server
        self.openai = openai.OpenAI(api_key=self.key, base_url=f"{server.url}/v1", max_retries=0, timeout=120)
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.server.url}{path}", json=body, headers=headers, timeout=60)

    def answer(self, model: str) -> str:
        reply = self.openai.chat.completions.create(model=model, messages=QUESTION, max_tokens=8, temperature=0)
        return reply.choices[0].message.content or ""


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-merge")


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Account:
    return Account(server, "bob-merge")


@pytest.fixture(scope="module")
def model(alice: Account) -> str:
    line = {"messages": [*QUESTION, {"role": "assistant", "content": "Zebra-42"}]}
    training = alice.openai.files.create(file=("t.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="fine-tune")
    job = alice.openai.fine_tuning.jobs.create(model=BASE, training_file=training.id)
    deadline = time.monotonic() + 60
    while (job := alice.openai.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job.status
        time.sleep(0.2)
    assert job.status == "succeeded" and job.fine_tuned_model is not None, job.error
    return job.fine_tuned_model


def blobs(server: RunningServer) -> set[str]:
    return {p.name for p in (Path(server.env["OPENGLM_DATA_DIR"]) / "blobs").iterdir()}


def test_a_merged_model_is_served_from_its_own_engine_and_only_to_its_owner(
    alice: Account, bob: Account, model: str, server: RunningServer
) -> None:
    base_answer, adapter_answer = alice.answer(BASE), alice.answer(model)
    assert adapter_answer != base_answer  # the adapter matters
    unmerged = merge_status(alice.http, model)
    assert unmerged == {
        **unmerged,
        "object": "fine_tuning.merge",
        "model": model,
        "status": "none",
        "serving": "adapter",
        "loaded": False,
    }

    # Another account: the model does not exist for it (1211), whatever it asks.
    for method in ("POST", "GET", "DELETE"):
        refused = bob.call(method, merge_path(model), {} if method == "POST" else None)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "1211", (method, refused.text)
    with pytest.raises(MergeRequestFailed) as bad:
        request_merge(alice.http, model, "q2")
    assert (bad.value.status_code, bad.value.code) == (400, "1214")

    # The Zhipu prefix takes the same call; F16 merges without requantizing.
    asked = alice.call("POST", merge_path(model, "/api/paas/v4"), {"quantization": "f16"})
    assert asked.status_code == 200, asked.text
    job = asked.json()
    assert job["status"] in ("queued", "running") and job["job_id"].startswith("ftmerge-")
    assert job["quantization"] == "f16" and job["serving"] == "adapter"
    with pytest.raises(MergeRequestFailed) as again:
        request_merge(alice.http, model)
    assert again.value.code == "1215"  # one merge at a time
    done = wait_for_merge(alice.http, model, poll_seconds=0.25, timeout=120)
    assert done["status"] == "succeeded", done
    assert (done["serving"], done["merged_type"], done["loaded"]) == ("merged", "F16", False)
    assert done["size_bytes"] > 200 * 2**20  # every matrix in F16
    assert f"merged-{job['job_id']}.gguf" in blobs(server)

    # Served from the merged file by an engine of its own, loaded by this first request: the same greedy answer.
    assert alice.answer(model) == adapter_answer
    assert merge_status(alice.http, model)["loaded"] is True
    assert alice.answer(BASE) == base_answer  # the base's engine is untouched
    streamed = alice.openai.chat.completions.create(
        model=model, messages=QUESTION, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == adapter_answer
    completion = alice.openai.completions.create(model=model, prompt="The capital of France is", max_tokens=4)
    assert completion.model == model and completion.choices[0].text
    with pytest.raises(openai.BadRequestError) as foreign:
        bob.answer(model)
    assert foreign.value.body["code"] == "1211"  # type: ignore[index]

    # Unmerged: the adapter on the base again, the merged file gone, the engine retired.
    undone = unmerge(alice.http, model)
    assert (undone["status"], undone["serving"], undone["loaded"]) == ("none", "adapter", False)
    assert not any(name.startswith("merged-") for name in blobs(server))
    assert alice.answer(model) == adapter_answer


def test_deleting_a_merged_model_removes_its_files(alice: Account, model: str, server: RunningServer) -> None:
    assert request_merge(alice.http, model, "base")["status"] in ("queued", "running")
    done = wait_for_merge(alice.http, model, poll_seconds=0.25, timeout=120)
    assert (done["status"], done["merged_type"]) == ("succeeded", "Q4_1"), done
    assert alice.answer(model)  # loads the merged Q4_1 engine
    alice.openai.models.delete(model)
    assert not any(name.startswith(("merged-", "adapter-")) for name in blobs(server))
    gone = alice.call("GET", merge_path(model))
    assert gone.status_code == 400 and gone.json()["error"]["code"] == "1211"
