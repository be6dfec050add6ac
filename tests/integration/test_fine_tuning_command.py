"""The ``command`` trainer on the real server: jobs go to a "cluster" through a submit command template, and the
cluster runs ``python -m openglm.tuning.runner JOB_DIR`` — the same training code as the local trainer — on the job
directory the server wrote. The scheduler is ``tests/fixtures/fake_sbatch.py`` (starts the runner as a job of its
own and waits for it, as ``sbatch --wait`` does) and ``fake_scancel.py`` (SIGTERMs it, as ``scancel`` does).

The proof is the served fine-tuned model: it says the code word the cluster's run taught (test_fine_tuning_real.py's
data and hyperparameters), greedily, through both SDKs; the run's per-step events are the job's. A cancelled job
runs the cancel command and its run stops; a run that fails fails the job with its error."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG
from .server import RunningServer
from .test_fine_tuning_real import CODE_WORD, TEACHING, Account, jsonl

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("cluster")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
            "OPENGLM_FINE_TUNING_THREADS": "2",
            "OPENGLM_FINE_TUNING_TRAINER": "command",
            "OPENGLM_FINE_TUNING_SUBMIT_COMMAND": f"{sys.executable} {FIXTURES / 'fake_sbatch.py'} {{job_dir}}",
            "OPENGLM_FINE_TUNING_CANCEL_COMMAND": f"{sys.executable} {FIXTURES / 'fake_scancel.py'} {{job_dir}}",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-cluster")


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


def job_dir(server: RunningServer, job_id: str) -> Path:
    return Path(server.env["OPENGLM_DATA_DIR"]) / "fine-tuning" / job_id


def test_a_cluster_run_trains_the_model_the_server_serves(alice: Account, server: RunningServer) -> None:
    job = create(alice, TEACHING, 2, suffix="zorblat")
    done = alice.wait(job.id)
    assert done.status == "succeeded", (done.error, server.log_path.read_text(errors="replace")[-3000:])
    model = done.fine_tuned_model
    assert CODE_WORD in alice.ask(model)
    assert CODE_WORD in alice.ask_zhipu(model)
    assert CODE_WORD not in alice.ask(BASE)

    events = list(alice.openai.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e.data for e in events if e.type == "metrics" and isinstance(e.data, dict) and "train_loss" in e.data]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert metrics[-1]["trained_tokens"] == done.trained_tokens and metrics[-1]["tokens_per_second"] > 0
    assert any(e.message.startswith("submitted attempt ") and "fake_sbatch.py" in e.message for e in events)
    assert any(e.message.startswith("loaded ") for e in events)  # the runner's own report, from events.jsonl
    assert [c.step_number for c in alice.openai.fine_tuning.jobs.checkpoints.list(job.id).data] == [1, 2, 3, 4, 5, 6]
    assert not job_dir(server, job.id).exists()  # removed once the adapter is the server's


def test_cancelling_runs_the_cancel_command_and_the_run_stops(alice: Account, server: RunningServer) -> None:
    job = create(alice, TEACHING, 50)
    directory = job_dir(server, job.id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (directory / "fake-slurm.pid").exists():
        time.sleep(0.1)
    pid = int((directory / "fake-slurm.pid").read_text())
    alice.openai.fine_tuning.jobs.cancel(job.id)
    assert alice.wait(job.id).status == "cancelled"
    assert (directory / "scancel.log").read_text() == f"SIGTERM {pid}\n"
    assert (directory / "cancel").exists()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)  # stopped (between steps), or killed with its submit command after the grace period


def test_a_failing_run_fails_the_job_saying_why(alice: Account, server: RunningServer) -> None:
    context_only = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello.", "weight": 0}]
    }
    job = create(alice, [context_only], 1)
    done = alice.wait(job.id)
    assert done.status == "failed" and done.error is not None and done.error.code == "training_failed"
    assert "every assistant message has weight 0; nothing to train on" in done.error.message
    status = json.loads((job_dir(server, job.id) / "status.json").read_text())
    assert status["status"] == "failed" and "nothing to train on" in status["error"]


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet, its parent gone, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
