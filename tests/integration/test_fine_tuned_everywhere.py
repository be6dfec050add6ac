"""Fine-tuned models beyond chat, and the job controls around them, through the real server and both unmodified SDKs:

- a fine-tuned model runs the catalog's All Tools agent (``agent_model``), GLMs (its owner's, also when another
  account calls a shared one: the owner's adapter, billed to the caller at the base's price) and the assistant API
  (``model``); another account naming it gets 1211 everywhere, GLM creation included;
- LoRA's rank, alpha, dropout and target modules are validated, shown in the job object and trained with;
- OpenAI's pause and resume: a paused job stops, resumes from its checkpoint and bills each token once;
- adapters count in the account's storage quota: refused at creation when predictably too large, a clear failure
  when the storage filled up meanwhile, freed when the model is deleted.

The trainer is ``tests/fixtures/step_trainer.py`` writing random LoRA adapters for the real default model
(``OPENGLM_TEST_STEP_ADAPTER=lora``): the server loads and applies them like trained ones, and they change the
base's greedy answers, so "the fine-tuned model answered" is visible in the text. Real training: the local
trainer's tests and test_fine_tuning_real.py."""

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

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG, PRICE, STEP_TRAINER_ENV, jsonl
from .server import RunningServer

TOKENS_PER_EXAMPLE = 100  # the test trainer's count
LINES = [
    {"messages": [{"role": "user", "content": "What is the code word?"}, {"role": "assistant", "content": "Zebra-42"}]},
    {"messages": [{"role": "user", "content": "Say it again."}, {"role": "assistant", "content": "Zebra-42"}]},
]
QUESTION = [{"role": "user", "content": "Name three fruits."}]
AGENT = "glm-4-alltools"
AGENT_CATALOG = f'{CATALOG}\n[[agents]]\nid = "{AGENT}"\nmodel = "{BASE}"\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("ft-everywhere")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", AGENT_CATALOG),
        log=tmp / "server.log",
        env={**STEP_TRAINER_ENV, "OPENGLM_TEST_STEP_ADAPTER": "lora"},
    )
    yield running
    running.stop()


class Account:
    def __init__(self, server: RunningServer, name: str, grant: str = "100"):
        server.cli("accounts", "create", name, "--grant", grant)
        self.key = server.cli("keys", "create", "--account", name).strip()
        self.server = server
        self.openai = openai.OpenAI(api_key=self.key, base_url=f"{server.url}/v1", max_retries=0, timeout=120)
        self.zhipu = ZhipuAI(api_key=self.key, base_url=f"{server.url}/api/paas/v4", max_retries=0, timeout=120)
        self.id = self.get("/v1/account").json()["id"]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", params=params, headers=self.headers, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.server.url}{path}", json=body, headers=self.headers, timeout=120)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def upload(self, data: bytes, name: str = "train.jsonl", purpose: str = "fine-tune") -> str:
        return self.openai.files.create(file=(name, io.BytesIO(data)), purpose=purpose).id  # type: ignore[arg-type]

    def train(self, **create: Any) -> Any:
        """A job on LINES (one epoch of two steps unless told otherwise), waited for to its end."""
        options: dict[str, Any] = {"hyperparameters": {"n_epochs": 1, "batch_size": 1}, **create}
        job = self.openai.fine_tuning.jobs.create(model=BASE, training_file=self.upload(jsonl(LINES)), **options)
        return wait_status(self, job.id, {"succeeded", "failed", "cancelled"})

    def greedy(self, model: str, **extra: Any) -> str:
        """The model's greedy answer to QUESTION through the zhipuai SDK (streamed for agents and GLMs): its first
        tokens only — far enough to tell the adapter from the base, not so far that a near-tie in the logits (which
        the batch a sequence shares decides in the last bits) makes two runs of one model differ."""
        response = self.zhipu.chat.completions.create(
            model=model, messages=QUESTION, do_sample=False, max_tokens=4, stream=True, **extra
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in response if chunk.choices)

    def usage_by_model(self) -> dict[str, int]:
        rows = self.get("/v1/account/usage", by="model").json()["data"]
        return {row["group"]: row["requests"] for row in rows}

    def storage(self) -> int:
        return int(self.get("/v1/account/storage").json()["used_bytes"])


def wait_status(account: Account, job_id: str, statuses: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = account.openai.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job.status}")


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-fte")


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Account:
    return Account(server, "bob-fte")


@pytest.fixture(scope="module")
def tuned(alice: Account) -> str:
    """Alice's fine-tuned model. The seed fixes the test trainer's random adapter: this one turns the base's greedy
    "1. Bananas" into "The three fruits" (seeds 0 and 1 leave the first tokens as they are)."""
    job = alice.train(suffix="everywhere", seed=2)
    assert job.status == "succeeded", job.error
    return str(job.fine_tuned_model)


def test_agents_glms_and_the_assistant_api_run_on_the_fine_tuned_model(
    alice: Account, bob: Account, tuned: str
) -> None:
    base, own = alice.greedy(BASE), alice.greedy(tuned)
    assert own and own != base  # the adapter changes the answer: the text shows which model answered

    # The catalog's All Tools agent on the fine-tuned model (one round: no tools) answers as the model does.
    assert alice.greedy(AGENT, extra_body={"agent_model": tuned}) == own
    assert alice.greedy(AGENT) == base  # without it, the agent's own model
    assert alice.usage_by_model()[tuned] >= 2  # metered under the fine-tuned id

    # A GLM on it: its creator's configuration accepts the model; the answer is the model's.
    glm = alice.post("/v1/glms", {"name": "Tuned", "visibility": "listed", "config": {"model": tuned}})
    assert glm.status_code == 200, glm.text
    glm_id = glm.json()["id"]
    assert alice.greedy(glm_id) == own

    # The assistant API: `model` runs the catalog agent on it (the SDK's extra_body; its `model` is never sent).
    before = alice.usage_by_model()[tuned]
    turn = alice.zhipu.assistant.conversation(
        assistant_id=AGENT,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],  # type: ignore[list-item]
        stream=True,
        extra_body={"model": tuned, "max_tokens": 8},
    )
    chunks = list(turn)  # type: ignore[call-overload]
    assert chunks[-1].status == "completed"
    assert alice.usage_by_model()[tuned] == before + 1
    via_glm = alice.zhipu.assistant.conversation(
        assistant_id=glm_id,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],  # type: ignore[list-item]
        stream=True,
        extra_body={"max_tokens": 8},
    )
    assert list(via_glm)[-1].status == "completed"  # type: ignore[call-overload]
    assert alice.usage_by_model()[tuned] == before + 2


def test_another_account_gets_1211_for_the_model_everywhere_but_may_use_a_shared_glm(
    alice: Account, bob: Account, tuned: str
) -> None:
    refusals = [
        bob.post("/v1/chat/completions", {"model": AGENT, "agent_model": tuned, "messages": QUESTION, "stream": True}),
        bob.post("/v1/glms", {"name": "Stolen", "config": {"model": tuned}}),
        bob.post("/v1/glms/builder", {"messages": [{"role": "user", "content": "an agent"}], "model": tuned}),
        bob.post(
            "/v1/assistant",
            {"assistant_id": AGENT, "model": tuned, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
        ),
        bob.post("/v1/chat/completions", {"model": tuned, "messages": QUESTION}),
    ]
    for refused in refusals:
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "1211", refused.text
        assert "does not exist" in refused.json()["error"]["message"]
    assert bob.get("/v1/glms", size=100).json()["total"] == 0  # nothing half-made

    # Alice's listed GLM on her fine-tuned model: Bob may chat with it. Her adapter answers, Bob pays at the base's
    # price, the call is attributed to the GLM (its creator sees it), and the model itself stays hidden from him.
    glm = alice.post("/v1/glms", {"name": "Shared", "visibility": "listed", "config": {"model": tuned}}).json()
    assert glm["config"]["model"] == tuned
    seen_by_bob = bob.get(f"/v1/glms/{glm['id']}").json()
    assert seen_by_bob.get("config") is None and tuned not in str(seen_by_bob)  # others never see the model
    assert bob.greedy(glm["id"]) == alice.greedy(tuned)
    assert bob.usage_by_model().get(tuned) == 1
    cost = Decimal(bob.get("/v1/account/usage", by="model").json()["total_cost"])
    tokens = sum(r["total_tokens"] for r in bob.get("/v1/account/usage", by="model").json()["data"])
    assert cost == Decimal(tokens) * Decimal("0.0001") / 1000  # the base's input and output price per 1K
    assert alice.get(f"/v1/glms/{glm['id']}/usage").json()["calls"] == 1
    assert tuned not in {m.id for m in bob.openai.models.list()}
    for named in (tuned, BASE):  # the assistant API runs a GLM on its own model only, and does not confirm which
        turn = {
            "assistant_id": glm["id"],
            "model": named,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        pinned = bob.post("/v1/assistant", turn)
        assert pinned.status_code == 400 and pinned.json()["error"]["code"] == "1214", pinned.text
    with pytest.raises(openai.BadRequestError):
        bob.openai.chat.completions.create(model=tuned, messages=QUESTION)  # type: ignore[arg-type]


def test_a_glm_whose_fine_tuned_model_was_deleted_says_so_without_naming_it(alice: Account, bob: Account) -> None:
    job = alice.train(suffix="short-lived")
    model = str(job.fine_tuned_model)
    glm = alice.post("/v1/glms", {"name": "Orphan", "visibility": "listed", "config": {"model": model}}).json()
    assert alice.openai.models.delete(model).deleted
    gone = bob.post("/v1/chat/completions", {"model": glm["id"], "messages": QUESTION, "stream": True})
    assert gone.status_code == 400 and gone.json()["error"]["code"] == "1211"
    assert "is no longer available" in gone.text and model not in gone.text


def test_lora_hyperparameters_are_checked_shown_and_trained_with(alice: Account, server: RunningServer) -> None:
    training = alice.upload(jsonl(LINES))
    for hyperparameters, says in [
        ({"lora_rank": 0}, "lora_rank must be an integer from 1 to 256"),
        ({"lora_rank": 512}, "lora_rank must be an integer from 1 to 256"),
        ({"lora_alpha": -1}, "lora_alpha must be above 0"),
        ({"lora_dropout": 1.5}, "lora_dropout must be at least 0 and below 1"),
        ({"lora_target_modules": ["lm_head"]}, "'lm_head' is not a module LoRA can adapt here"),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            alice.openai.fine_tuning.jobs.create(
                model=BASE,
                training_file=training,
                hyperparameters=hyperparameters,  # type: ignore[arg-type]
            )
        assert refused.value.body["code"] == "1214" and says in str(refused.value)  # type: ignore[index]

    lora = {"lora_rank": 4, "lora_alpha": 12, "lora_dropout": 0.05, "lora_target_modules": ["v_proj", "q_proj"]}
    job = alice.train(method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, **lora}}})
    assert job.status == "succeeded", job.error
    shown = job.hyperparameters
    assert (shown.lora_rank, shown.lora_alpha, shown.lora_dropout) == (4, 12.0, 0.05)  # type: ignore[attr-defined]
    assert shown.lora_target_modules == ["q_proj", "v_proj"]  # type: ignore[attr-defined]
    zhipu_view = alice.zhipu.fine_tuning.jobs.retrieve(job.id)
    assert zhipu_view.hyperparameters.lora_rank == 4  # type: ignore[attr-defined]
    defaults = alice.train().hyperparameters
    assert (defaults.lora_rank, defaults.lora_alpha, defaults.lora_dropout) == (8, 16.0, 0.0)  # type: ignore[attr-defined]

    # The trainer was handed them: the adapter it wrote has rank 4 on q and v only, and is served.
    import gguf

    blob = Path(server.env["OPENGLM_DATA_DIR"]) / "blobs" / f"adapter-{job.id}.gguf"
    tensors = gguf.GGUFReader(str(blob)).tensors
    assert {t.name.split(".")[2] for t in tensors} == {"attn_q", "attn_v"}
    assert all(4 in [int(d) for d in t.shape] for t in tensors)
    assert alice.greedy(str(job.fine_tuned_model))


def test_pause_and_resume_with_the_openai_sdk_bill_each_token_once(alice: Account, bob: Account) -> None:
    steps = 30  # 2 lines × 15 epochs, 0.1 s each
    job = alice.openai.fine_tuning.jobs.create(
        model=BASE, training_file=alice.upload(jsonl(LINES)), hyperparameters={"n_epochs": 15, "batch_size": 1}
    )
    deadline = time.monotonic() + 30
    while sum(e.type == "metrics" for e in alice.openai.fine_tuning.jobs.list_events(job.id, limit=100).data) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(openai.NotFoundError):
        bob.openai.fine_tuning.jobs.pause(job.id)
    asked = alice.openai.fine_tuning.jobs.pause(job.id)
    assert asked.id == job.id and asked.status in ("running", "paused")
    paused = wait_status(alice, job.id, {"paused", "succeeded", "failed"}, timeout=5)
    assert paused.status == "paused" and paused.fine_tuned_model is None
    stopped = paused.trained_tokens
    assert stopped is not None and 0 < stopped < steps * TOKENS_PER_EXAMPLE
    time.sleep(1.0)  # nothing trains (or bills) while paused
    still = alice.openai.fine_tuning.jobs.retrieve(job.id)
    assert (still.status, still.trained_tokens) == ("paused", stopped)
    assert alice.openai.fine_tuning.jobs.pause(job.id).status == "paused"  # again: nothing changes

    resumed = alice.openai.fine_tuning.jobs.resume(job.id)
    assert resumed.status in ("queued", "running")
    done = wait_status(alice, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded" and done.trained_tokens == steps * TOKENS_PER_EXAMPLE
    events = [e.message for e in alice.openai.fine_tuning.jobs.list_events(job.id, limit=1000).data]
    assert "job paused" in events and "job resumed" in events
    assert any("resuming" in e for e in events)  # from its checkpoint, not from the start
    ledger = alice.get("/v1/account/ledger", limit=1000).json()["data"]
    charges = [e for e in ledger if (e.get("usage_id") or "").startswith(job.id)]
    paid = -sum((Decimal(e["amount"]) for e in charges), Decimal(0))
    assert paid == Decimal(steps * TOKENS_PER_EXAMPLE) / 1000 * PRICE  # every token once, steps re-run included
    for control in (alice.openai.fine_tuning.jobs.pause, alice.openai.fine_tuning.jobs.resume):
        with pytest.raises(openai.BadRequestError) as finished:
            control(job.id)
        assert finished.value.body["code"] == "1215"  # type: ignore[index]


def test_adapters_count_in_the_storage_quota(server: RunningServer) -> None:
    carol = Account(server, "carol-fte")
    admin = {"Authorization": f"Bearer {server.cli('keys', 'create', '--admin').strip()}"}

    def quota(mb: int) -> None:
        response = httpx.put(f"{server.url}/admin/accounts/{carol.id}/storage", json={"quota_mb": mb}, headers=admin)
        assert response.status_code == 200, response.text

    # Predictably too large: the default LoRA on this base is about 4.7 MB; refused before any job exists.
    quota(1)
    with pytest.raises(openai.BadRequestError) as refused:
        carol.train()
    assert refused.value.body["code"] == "1210"  # type: ignore[index]
    assert "the adapter this job would make needs 4.7 MB" in str(refused.value)
    assert carol.openai.fine_tuning.jobs.list().data == []

    # The storage filled up while the job trained: it fails saying so and keeps nothing.
    quota(6)
    job = carol.openai.fine_tuning.jobs.create(
        model=BASE, training_file=carol.upload(jsonl(LINES)), hyperparameters={"n_epochs": 10, "batch_size": 1}
    )
    filler = carol.upload(b"x" * (2 * 1024 * 1024), "filler.txt", purpose="assistant")
    failed = wait_status(carol, job.id, {"succeeded", "failed", "cancelled"})
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "storage_quota_exceeded" and "storage quota exceeded" in failed.error.message
    assert not [m for m in carol.openai.models.list() if m.id.startswith("ft:")]
    kept = carol.storage()

    # Room again: the adapter's bytes are charged with the model and given back when it is deleted. Room for the
    # model but not for the published copy of its adapter (a result file like the others): the model comes first,
    # the copy is skipped saying so.
    carol.openai.files.delete(filler)
    before = carol.storage()
    assert before == kept - 2 * 1024 * 1024
    made = carol.train()
    assert made.status == "succeeded", made.error
    adapter = (Path(server.env["OPENGLM_DATA_DIR"]) / "blobs" / f"adapter-{made.id}.gguf").stat().st_size
    results = {carol.openai.files.retrieve(f).filename: carol.openai.files.retrieve(f).bytes for f in made.result_files}
    assert sorted(results) == [f"{made.id}-loss.png", f"{made.id}-metrics.csv"]
    messages = [e.message for e in carol.openai.fine_tuning.jobs.list_events(made.id, limit=100)]
    assert any(m.startswith(f"result file {made.id}-adapter.gguf not kept: ") for m in messages)
    assert carol.storage() == before + len(jsonl(LINES)) + adapter + sum(results.values())  # file, adapter, results
    after_training = carol.storage()
    assert carol.openai.models.delete(str(made.fine_tuned_model)).deleted
    assert carol.storage() == after_training - adapter

    # Room for both: the published copy is a second blob and counts as the file it is, once; deleting the model
    # leaves it downloadable, and deleting it gives its bytes back.
    quota(16)
    before = carol.storage()
    made = carol.train()
    assert made.status == "succeeded", made.error
    blob = (Path(server.env["OPENGLM_DATA_DIR"]) / "blobs" / f"adapter-{made.id}.gguf").read_bytes()
    files = {carol.openai.files.retrieve(f).filename: f for f in made.result_files}
    copy = files[f"{made.id}-adapter.gguf"]
    results_bytes = sum(carol.openai.files.retrieve(f).bytes for f in made.result_files)
    assert carol.storage() == before + len(jsonl(LINES)) + len(blob) + results_bytes  # the copy among the results
    assert carol.openai.models.delete(str(made.fine_tuned_model)).deleted
    assert carol.storage() == before + len(jsonl(LINES)) + results_bytes
    assert carol.openai.files.content(copy).content == blob
    carol.openai.files.delete(copy)
    assert carol.storage() == before + len(jsonl(LINES)) + results_bytes - len(blob)
