"""The ``remote`` trainer's reading of a remote job's metrics events (``openglm/tuning/remote.py``): OpenGLM's full
set, and OpenAI's smaller one (no total steps, epoch or trained tokens: derived from the task, or kept from the last
report so billing never goes backwards). Between two real servers: tests/integration/test_fine_tuning_remote.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from openglm.tuning.remote import Follower, RemoteAPI, RemoteUnavailable, _mapping
from openglm.tuning.trainers import Metrics, TrainerUnavailable

from .test_local_trainer import LINE, Recorder, task


def follower(tmp_path: Path, lines: int = 4, epochs: int = 3) -> Follower:
    state = {"remote_job_id": "ftjob-remote"}
    api = RemoteAPI("http://127.0.0.1:9/v1", "")
    job = task(tmp_path / "base.gguf", tmp_path, [LINE] * lines, epochs=epochs)  # a base it never reads
    return Follower(api, job, Recorder(), state, poll=1.0, patience=0.0)


def test_openglm_metrics_are_read_whole(tmp_path: Path) -> None:
    data = {
        "step": 5,
        "current_steps": 5,
        "total_steps": 12,
        "epoch": 1.25,
        "train_loss": 0.75,
        "loss": 0.75,
        "valid_loss": 0.9,
        "learning_rate": 0.0002,
        "tokens_per_second": 321.5,
        "trained_tokens": 640,
        "elapsed_time": "00:01:05",
        "remaining_time": "01:00:00",
    }
    assert follower(tmp_path).metrics(data) == Metrics(
        step=5,
        total_steps=12,
        epoch=1.25,
        trained_tokens=640,
        loss=0.75,
        eval_loss=0.9,
        learning_rate=0.0002,
        tokens_per_second=321.5,
        elapsed_seconds=65.0,
        remaining_seconds=3600.0,
    )


def test_openai_metrics_are_completed_from_the_task(tmp_path: Path) -> None:
    follow = follower(tmp_path)  # 4 lines, batch 1, 3 epochs: 12 steps
    follow.last = Metrics(step=2, total_steps=12, epoch=0.5, trained_tokens=300)
    metrics = follow.metrics({"step": 6, "train_loss": 1.5, "valid_loss": 1.75, "train_mean_token_accuracy": 0.5})
    assert metrics == Metrics(
        step=6, total_steps=12, epoch=1.5, trained_tokens=300, loss=1.5, eval_loss=1.75, accuracy=0.5
    )
    # A count that went down (a remote re-running steps after its own restart) is not billed backwards.
    assert follow.metrics({"step": 7, "train_loss": 1.0, "trained_tokens": 100}).trained_tokens == 300


def test_the_model_mapping_is_read_and_checked() -> None:
    assert _mapping("") == {}
    assert _mapping("smollm2-135m-instruct = HuggingFaceTB/SmolLM2-135M-Instruct, glm-4-9b=glm4") == {
        "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "glm-4-9b": "glm4",
    }
    with pytest.raises(TrainerUnavailable, match="'glm-4-9b' is not local=remote"):
        _mapping("glm-4-9b")


async def test_an_unreachable_remote_is_worth_retrying() -> None:
    api = RemoteAPI("http://127.0.0.1:9/v1", "")  # the discard port: nothing listens
    try:
        with pytest.raises(RemoteUnavailable, match="GET fine_tuning/jobs/x: Connect"):
            await api.call("GET", "fine_tuning/jobs/x")
    finally:
        await api.close()
