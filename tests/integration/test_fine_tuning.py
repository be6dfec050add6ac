"""Fine-tuning through the real server and both unmodified SDKs (openai, zhipuai): jobs created, polled to
succeeded, listed, their events, checkpoints and result files read; billing as trained tokens × the catalog's
fine-tuning price; clear refusals (invalid lines by number, an unknown base, a short balance) that leave no job;
privacy of jobs and fine-tuned models between accounts; cancellation of a running job within seconds.

The trainer is ``tests/fixtures/step_trainer.py`` (a deterministic test double), loaded through OPENGLM_PLUGINS and
chosen by OPENGLM_FINE_TUNING_TRAINER, as an operator would add a trainer; the base is the real default model."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from zhipuai import ZhipuAI
from zhipuai.core._errors import APIRequestFailedError

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG, PRICE, STEP_TRAINER_ENV, jsonl
from .server import RunningServer

TOKENS_PER_EXAMPLE = 100  # the test trainer's count

LINES = [
    {"messages": [{"role": "user", "content": "What is the code word?"}, {"role": "assistant", "content": "Zebra-42"}]},
    {
        "messages": [
            {"role": "system", "content": "You call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    },
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("fine-tuning")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env=STEP_TRAINER_ENV,
    )
    yield running
    running.stop()


class Account:
    def __init__(self, server: RunningServer, name: str, grant: str = "100"):
        server.cli("accounts", "create", name, "--grant", grant)
        self.key = server.cli("keys", "create", "--account", name).strip()
        self.server = server
        self.openai = openai.OpenAI(api_key=self.key, base_url=f"{server.url}/v1", max_retries=0, timeout=60)
        self.zhipu = ZhipuAI(api_key=self.key, base_url=f"{server.url}/api/paas/v4", max_retries=0, timeout=60)
        self.id = self.get("/v1/account").json()["id"]

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.get(f"{self.server.url}{path}", params=params, headers=headers, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.post(f"{self.server.url}{path}", json=body, headers=headers, timeout=60)

    def upload(self, data: bytes, name: str = "train.jsonl") -> str:
        return self.openai.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id

    def job_charges(self, job_id: str) -> tuple[int, Decimal]:
        """Ledger entries of the job's charges: how many, and their sum (CNY, positive)."""
        entries = self.get("/v1/account/ledger", limit=1000).json()["data"]
        mine = [e for e in entries if (e.get("usage_id") or "").startswith(job_id)]
        return len(mine), -sum((Decimal(e["amount"]) for e in mine), Decimal(0))


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-ft")


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Account:
    return Account(server, "bob-ft")


def wait_status(account: Account, job_id: str, statuses: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = account.openai.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stayed {job.status}")


def test_openai_sdk_trains_bills_and_lists_a_private_model(alice: Account, bob: Account) -> None:
    training, validation = alice.upload(jsonl(LINES)), alice.upload(jsonl(LINES[:1]), "valid.jsonl")
    job = alice.openai.fine_tuning.jobs.create(
        model=BASE,
        training_file=training,
        validation_file=validation,
        suffix="codeword",
        seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 1}}},
    )
    assert job.status == "queued" and job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size, job.seed) == (2, 1, 7)
    assert job.method is not None and job.method.type == "supervised"
    done = wait_status(alice, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded", done.error
    model = done.fine_tuned_model
    assert model is not None and model.startswith(f"ft:{BASE}:codeword:")
    assert done.trained_tokens == 4 * TOKENS_PER_EXAMPLE  # 2 examples × 2 epochs
    assert done.finished_at is not None and len(done.result_files) == 3

    # Result files, downloadable through /files: the metrics CSV, the loss curve and the adapter.
    contents = {f: alice.openai.files.content(f).content for f in done.result_files}
    csv = next(c for c in contents.values() if c.startswith(b"step,"))
    assert len(csv.decode().strip().splitlines()) == 1 + 4  # a row per step
    assert any(c.startswith(b"\x89PNG") for c in contents.values())
    adapter = next(f for f, c in contents.items() if c.startswith(b"GGUF"))
    assert contents[adapter] == f"GGUFtest adapter of {job.id} on {BASE}".encode()
    assert alice.openai.files.retrieve(adapter).filename == f"{job.id}-adapter.gguf"
    assert alice.openai.files.retrieve(done.result_files[0]).purpose == "fine-tune-results"

    # Events and checkpoints parse in the SDK; the events page on from an id.
    events = list(alice.openai.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics if isinstance(e.data, dict)][:4] == [1, 2, 2, 3]  # step 2: a checkpoint
    assert any("ready" in e.message for e in events)
    later = alice.openai.fine_tuning.jobs.list_events(job.id, after=events[1].id, limit=100)
    assert [e.id for e in later.data] == [e.id for e in events[2:]]
    checkpoints = alice.openai.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [2, 4]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{model}:ckpt-step-2"
    assert job.id in [j.id for j in alice.openai.fine_tuning.jobs.list(limit=100)]

    # Billed: trained tokens × the price, as charges while it ran, once.
    count, paid = alice.job_charges(job.id)
    assert count >= 2 and paid == Decimal(4 * TOKENS_PER_EXAMPLE) / 1000 * PRICE

    # The model is the account's: listed with owned_by, not found for another account.
    cards = {m.id: m for m in alice.openai.models.list()}
    assert cards[model].owned_by == alice.id and model not in {m.id for m in bob.openai.models.list()}
    assert alice.openai.models.retrieve(model).id == model
    with pytest.raises(openai.BadRequestError) as foreign:
        bob.openai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert foreign.value.status_code == 400 and foreign.value.body["code"] == "1211"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        bob.openai.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        bob.openai.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError):
        bob.openai.models.delete(model)

    # The owner's calls go to the base's engine with the job's adapter. The test trainer's file is not a real
    # adapter, so llama.cpp refuses to load it: an engine error naming the model, never the base model's answer.
    # (Real adapters answering: test_fine_tuning_real.py.)
    with pytest.raises(openai.InternalServerError) as unloadable:
        alice.openai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert unloadable.value.body["code"] == "1260" and f"adapter {model}" in str(unloadable.value)  # type: ignore[index]
    assert "/blobs/" not in str(unloadable.value)  # the server's paths stay in its log
    with pytest.raises(openai.InternalServerError) as completion:
        alice.openai.completions.create(model=model, prompt="The code word is")
    assert f"adapter {model}" in str(completion.value)

    deleted = alice.openai.models.delete(model)
    assert deleted.deleted and deleted.id == model
    assert model not in {m.id for m in alice.openai.models.list()}
    with pytest.raises(openai.BadRequestError):
        alice.openai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_zhipu_sdk_creates_polls_and_deletes(alice: Account) -> None:
    training = alice.upload(jsonl(LINES))
    job = alice.zhipu.fine_tuning.jobs.create(
        model=BASE, training_file=training, hyperparameters={"n_epochs": 1}, suffix="zp", request_id="req-ft-1"
    )
    assert job.status == "queued" and job.request_id == "req-ft-1" and job.result_files == []
    deadline = time.monotonic() + 60
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = alice.zhipu.fine_tuning.jobs.retrieve(job.id)  # type: ignore[arg-type]
    assert job.status == "succeeded" and job.fine_tuned_model and job.trained_tokens == 2 * TOKENS_PER_EXAMPLE
    listed = alice.zhipu.fine_tuning.jobs.list(limit=100)
    assert job.id in [j.id for j in listed.data]
    events = alice.zhipu.fine_tuning.jobs.list_events(job.id, limit=100)  # type: ignore[arg-type]
    steps = [e.data.current_steps for e in events.data if e.type == "metrics" and e.data is not None]
    assert steps == [1] and all(e.object == "fine_tuning.job.event" for e in events.data)
    status = alice.zhipu.fine_tuning.models.delete(job.fine_tuned_model)
    assert (status.model_name, status.delete_status) == (job.fine_tuned_model, "deleted")
    removed = alice.zhipu.fine_tuning.jobs.delete(job.id)  # type: ignore[arg-type]
    assert removed.id == job.id
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its 404 error class
        alice.zhipu.fine_tuning.jobs.retrieve(job.id)  # type: ignore[arg-type]


def _job_count(account: Account) -> int:
    return len(account.get("/v1/fine_tuning/jobs", limit=100).json()["data"])


def test_an_invalid_file_is_refused_by_line_and_creates_nothing(alice: Account) -> None:
    bad = [
        LINES[0],
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        LINES[0],
        {"messages": [{"role": "tool", "tool_call_id": "nope", "content": "r"}, {"role": "assistant", "content": "a"}]},
    ]
    before = _job_count(alice)
    response = alice.post("/v1/fine_tuning/jobs", {"model": BASE, "training_file": alice.upload(jsonl(bad))})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "1214"
    assert "line 2: messages: no assistant message" in error["message"]
    assert "line 3: messages[0]: role must be" in error["message"]
    assert "line 5: messages[0]: tool_call_id 'nope'" in error["message"]
    assert "line 1" not in error["message"] and "line 4" not in error["message"]
    dpo = alice.post(
        "/v1/fine_tuning/jobs", {"model": BASE, "training_file": alice.upload(jsonl(LINES)), "method": {"type": "dpo"}}
    )
    assert dpo.status_code == 400 and "line 1: a DPO line needs" in dpo.json()["error"]["message"]
    assert _job_count(alice) == before


def test_an_unknown_base_and_another_accounts_file_are_clear_errors(alice: Account, bob: Account) -> None:
    training = alice.upload(jsonl(LINES))
    with pytest.raises(APIRequestFailedError) as unknown:
        alice.zhipu.fine_tuning.jobs.create(model="glm-9-ultra", training_file=training)
    assert "1211" in str(unknown.value) and BASE in str(unknown.value)  # says which bases can be fine-tuned
    foreign = bob.post("/v1/fine_tuning/jobs", {"model": BASE, "training_file": training})
    assert foreign.status_code == 400 and "does not exist" in foreign.json()["error"]["message"]


def test_a_short_balance_is_refused_before_any_job(server: RunningServer) -> None:
    poor = Account(server, "poor-ft", grant="0.01")
    training = poor.upload(jsonl(LINES))
    with pytest.raises(openai.RateLimitError) as refused:
        poor.openai.fine_tuning.jobs.create(model=BASE, training_file=training, hyperparameters={"n_epochs": 50})
    assert refused.value.body["code"] == "1113"  # type: ignore[index]
    assert "estimated" in str(refused.value)
    assert _job_count(poor) == 0


def test_a_running_job_is_cancelled_within_seconds_and_pays_for_its_steps(alice: Account) -> None:
    training = alice.upload(jsonl(LINES))
    job = alice.openai.fine_tuning.jobs.create(
        model=BASE, training_file=training, hyperparameters={"n_epochs": 50, "batch_size": 1}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = alice.openai.fine_tuning.jobs.list_events(job.id, limit=100).data
        if sum(e.type == "metrics" for e in events) >= 3:
            break
        time.sleep(0.1)
    asked = time.monotonic()
    assert alice.openai.fine_tuning.jobs.cancel(job.id).id == job.id
    cancelled = wait_status(alice, job.id, {"cancelled", "succeeded", "failed"}, timeout=10)
    assert cancelled.status == "cancelled" and time.monotonic() - asked < 5
    assert cancelled.fine_tuned_model is None
    time.sleep(0.5)  # nothing is written after the end
    _, paid = alice.job_charges(job.id)
    trained = cancelled.trained_tokens
    assert trained is not None and 0 < trained < 100 * TOKENS_PER_EXAMPLE
    assert paid == Decimal(trained) / 1000 * PRICE
    # A running job cannot be deleted; a cancelled one can.
    assert alice.zhipu.fine_tuning.jobs.delete(job.id).id == job.id  # type: ignore[arg-type]
