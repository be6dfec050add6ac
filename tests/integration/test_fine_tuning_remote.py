"""The ``remote`` trainer between two real OpenGLM servers on loopback: the front (``OPENGLM_FINE_TUNING_TRAINER=
remote``) sends its jobs to a second one standing in for the GPU box (the real ``local`` trainer), follows its
events, downloads the adapter it publishes as a result file, and serves it. Both serve the tiny random llama
(tests/fixtures/tiny_model.py: the default's tokenizer and template, 2 layers of 64), which loads and trains in
seconds; what the default model learns is test_fine_tuning_real.py's.

The proof is the front's fine-tuned model: it says the code word the GPU box taught (test_fine_tuning_real.py's
data and learning rate, 60 steps: tests/fixtures/tiny_model.py), greedily, through both SDKs, while the front's base
does not — with the very bytes the GPU box published. Cancelling on the front cancels the remote job, pausing pauses
it (its real trainer stopping at a step) and resuming resumes it; a remote job that fails fails the
front's job with the remote's message; an attempt that stopped (the server going down) leaves the remote job
running, and the next attempt re-attaches to it instead of starting another."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.jobs.context import JobFailed
from openglm.tuning.remote import RemoteTrainer
from openglm.tuning.trainers import Hyperparameters, Metrics, TrainingTask

from ..fixtures.tiny_model import TINY_EPOCHS, TINY_THREADS
from .conftest import write_catalog
from .fine_tuning_catalog import TINY_BASE as BASE
from .fine_tuning_catalog import tiny_catalog
from .server import RunningServer
from .test_fine_tuning_real import CODE_WORD, TEACHING, Account, jsonl

STEPS = TINY_EPOCHS * len(TEACHING)  # batch 1

SERVER_ENV = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0", "OPENGLM_JOB_POLL_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def gpu_box(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("gpu-box")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", tiny_catalog(tiny_gguf)),
        log=tmp / "server.log",
        env={**SERVER_ENV, "OPENGLM_FINE_TUNING_THREADS": str(TINY_THREADS)},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def operator(gpu_box: RunningServer) -> Account:
    """The platform's account on the GPU box: the front's key there."""
    return Account(gpu_box, "platform-operator")


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, gpu_box: RunningServer, operator: Account
) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("front")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", tiny_catalog(tiny_gguf)),
        log=tmp / "server.log",
        env={
            **SERVER_ENV,
            "OPENGLM_FINE_TUNING_TRAINER": "remote",
            "OPENGLM_FINE_TUNING_REMOTE_URL": f"{gpu_box.url}/v1",
            "OPENGLM_FINE_TUNING_REMOTE_API_KEY": operator.key,
            "OPENGLM_FINE_TUNING_REMOTE_POLL_SECONDS": "0.2",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(front: RunningServer) -> Account:
    return Account(front, "alice-remote")


def create(account: Account, lines: list[Any], epochs: int, **options: Any) -> Any:
    file = account.openai.files.create(file=("lines.jsonl", io.BytesIO(jsonl(lines))), purpose="fine-tune")
    hyperparameters = {"n_epochs": epochs, "batch_size": 1, "learning_rate_multiplier": 10}
    return account.openai.fine_tuning.jobs.create(
        model=BASE,
        training_file=file.id,
        seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},  # type: ignore[typeddict-item]
        **options,
    )


def remote_job_of(account: Account, job_id: str, timeout: float = 60) -> str:
    """The remote job's id, from the front job's event that announced it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in account.openai.fine_tuning.jobs.list_events(job_id, limit=100):
            if event.message.startswith("remote job "):
                return event.message.split()[2]
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never created its remote job")


def adapter_bytes(account: Account, file_ids: list[str]) -> bytes:
    names = {f: account.openai.files.retrieve(f).filename for f in file_ids}
    [adapter] = [f for f, name in names.items() if name.endswith(".gguf")]
    return account.openai.files.content(adapter).content


def test_the_front_serves_the_adapter_the_remote_trained(
    alice: Account, operator: Account, front: RunningServer, gpu_box: RunningServer
) -> None:
    job = create(alice, TEACHING, TINY_EPOCHS, suffix="zorblat")
    done = alice.wait(job.id)
    assert done.status == "succeeded", (done.error, front.log_path.read_text(errors="replace")[-3000:])
    model = done.fine_tuned_model
    assert model.startswith(f"ft:{BASE}:zorblat:")

    # The remote job ran with the front job's method, hyperparameters and seed, on the operator's account there.
    remote = operator.openai.fine_tuning.jobs.retrieve(remote_job_of(alice, job.id))
    assert remote.status == "succeeded" and remote.seed == 42 and remote.method is not None
    assert (remote.hyperparameters.n_epochs, remote.hyperparameters.batch_size) == (TINY_EPOCHS, 1)
    assert remote.hyperparameters.learning_rate_multiplier == 10
    assert done.trained_tokens == remote.trained_tokens

    # The front serves the very adapter the remote published (and publishes it in turn).
    assert adapter_bytes(alice, done.result_files) == adapter_bytes(operator, remote.result_files)

    # Its fine-tuned model says what the remote taught, through both SDKs; the front's base does not.
    assert CODE_WORD in alice.ask(model)
    assert CODE_WORD in alice.ask_zhipu(model)
    assert CODE_WORD not in alice.ask(BASE)

    # The remote's per-step metrics became the front job's events (billed there, shown to both SDKs).
    events = list(alice.openai.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e.data for e in events if e.type == "metrics" and isinstance(e.data, dict) and "train_loss" in e.data]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert all(m["total_steps"] == STEPS for m in metrics) and metrics[-1]["trained_tokens"] == done.trained_tokens
    assert any(e.message.startswith("remote: loaded") for e in events)  # the remote's own messages, relayed


def test_cancelling_on_the_front_cancels_the_remote_job(alice: Account, operator: Account) -> None:
    job = create(alice, TEACHING, 50)
    remote_id = remote_job_of(alice, job.id)
    alice.openai.fine_tuning.jobs.cancel(job.id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        remote = operator.openai.fine_tuning.jobs.retrieve(remote_id)
        if remote.status == "cancelled":
            break
        time.sleep(0.2)
    assert remote.status == "cancelled"
    assert alice.wait(job.id).status == "cancelled"


def wait_for(what: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_pausing_on_the_front_pauses_the_remote_job_and_resuming_resumes_it(alice: Account, operator: Account) -> None:
    # 450 steps, seconds of the tiny model's: still training when the pause reaches the GPU box.
    job = create(alice, TEACHING * 3, 50)
    remote_id = remote_job_of(alice, job.id)
    wait_for(lambda: any(e.type == "metrics" for e in alice.openai.fine_tuning.jobs.list_events(job.id, limit=100)))
    alice.openai.fine_tuning.jobs.pause(job.id)
    wait_for(lambda: alice.openai.fine_tuning.jobs.retrieve(job.id).status == "paused")
    # The GPU box's trainer stops at its next step, with a checkpoint there.
    wait_for(lambda: operator.openai.fine_tuning.jobs.retrieve(remote_id).status == "paused")
    messages = [e.message for e in alice.openai.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert f"paused the remote job {remote_id}" in messages

    alice.openai.fine_tuning.jobs.resume(job.id)
    wait_for(
        lambda: (
            f"resumed the remote job {remote_id}"
            in [e.message for e in alice.openai.fine_tuning.jobs.list_events(job.id, limit=100)]
        )
    )
    assert operator.openai.fine_tuning.jobs.retrieve(remote_id).status in ("queued", "running")
    remote_events = [e.message for e in operator.openai.fine_tuning.jobs.list_events(remote_id, limit=100)]
    assert "job paused" in remote_events and "job resumed" in remote_events

    alice.openai.fine_tuning.jobs.cancel(job.id)  # the rest of its steps are not needed
    wait_for(lambda: operator.openai.fine_tuning.jobs.retrieve(remote_id).status == "cancelled")
    assert alice.wait(job.id).status == "cancelled"


def test_a_remote_failure_fails_the_job_with_the_remotes_message(alice: Account, operator: Account) -> None:
    # Valid on both servers, but nothing to train on: the remote's training fails when it renders the lines.
    context_only = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello.", "weight": 0},
        ]
    }
    job = create(alice, [context_only], 1)
    done = alice.wait(job.id)
    assert done.status == "failed"
    remote = operator.openai.fine_tuning.jobs.retrieve(remote_job_of(alice, job.id))
    assert remote.status == "failed" and remote.error is not None
    assert done.error is not None and done.error.code == remote.error.code == "training_failed"
    assert "nothing to train on" in remote.error.message
    assert done.error.message == f"the remote job {remote.id} failed: {remote.error.message}"


class Recorder:
    """A TrainingReporter keeping what the trainer saved and said (as the job handler would be told)."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self.messages: list[str] = []

    async def progress(self, metrics: Metrics) -> None:
        pass

    async def message(self, text: str) -> None:
        self.messages.append(text)

    async def checkpoint(self, state: dict[str, Any], metrics: Metrics) -> None:
        self.states.append(state)

    def cancelled(self) -> bool:
        return False

    def pausing(self) -> bool:
        return False


def test_a_stopped_attempt_leaves_the_remote_job_and_the_next_re_attaches(
    gpu_box: RunningServer, operator: Account, tiny_gguf: Path, tmp_path: Path
) -> None:
    gguf = str(tiny_gguf)
    context_only = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hi", "weight": 0}]
    }
    task = TrainingTask(
        job_id="ftjob-reattach",
        base=ModelSpec(id=BASE, source=gguf),
        base_path=gguf,
        method="supervised",
        training=[context_only],  # the remote job fails quickly: its outcome is what the attempts must agree on
        validation=[],
        hyperparameters=Hyperparameters(n_epochs=1, batch_size=1, learning_rate_multiplier=1.0, seed=1),
        workdir=tmp_path,
    )
    settings = Settings(
        fine_tuning_remote_url=f"{gpu_box.url}/v1",
        fine_tuning_remote_api_key=operator.key,
        fine_tuning_remote_poll_seconds=0.2,
    )

    async def attempts() -> tuple[dict[str, Any], list[JobFailed], list[Recorder]]:
        first = Recorder()
        run = asyncio.create_task(RemoteTrainer(settings).train(task, first))
        while not any("remote_job_id" in state for state in first.states):
            await asyncio.sleep(0.01)
        run.cancel()  # the server stopping: the task cancelled, not the job
        with pytest.raises(asyncio.CancelledError):
            await run
        state = first.states[-1]
        failures, reporters = [], []
        # Re-claimed with the remote job's id; and as if the first had died before saving it (files only).
        for resume in (state, {"remote_files": state["remote_files"]}):
            reporter = Recorder()
            with pytest.raises(JobFailed) as failed:
                await RemoteTrainer(settings).train(replace(task, resume=resume), reporter)
            failures.append(failed.value)
            reporters.append(reporter)
        return state, failures, reporters

    state, failures, reporters = asyncio.run(attempts())
    remote_id = state["remote_job_id"]
    assert reporters[0].messages[0] == f"re-attached to the remote job {remote_id} at {gpu_box.url}/v1"
    assert reporters[1].messages[0].startswith(f"remote job {remote_id} found (an earlier attempt created it)")
    for failure in failures:
        assert failure.message.startswith(f"the remote job {remote_id} failed: ") and "nothing to train on" in str(
            failure
        )
    # One remote job for the three attempts, which the stopped one did not cancel.
    jobs = [
        j
        for j in operator.openai.fine_tuning.jobs.list(limit=100)
        if j.training_file == state["remote_files"]["training"]
    ]
    assert [(j.id, j.status) for j in jobs] == [(remote_id, "failed")]
