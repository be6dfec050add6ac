"""The ``command`` trainer (``openglm/tuning/command.py``) with a real submit command — a shell running the real
runner (``python -m openglm.tuning.runner {job_dir}``) on the tiny random llama (tests/fixtures/tiny_model.py: the
default's tokenizer and template, 2 layers of 64; what is tested is the plumbing, not what a model learns): an
attempt interrupted by a stopping server is resumed from the job directory's checkpoint by the next, and a run that
already succeeded is not run again. Misconfigured commands fail or retry saying why, and the command never sees the
server's OPENGLM_* secrets."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.jobs.context import JobFailed
from openglm.tuning.command import SubmittedTrainer
from openglm.tuning.pipeline import TrainingProcessDied
from openglm.tuning.runner import read_status
from openglm.tuning.trainers import TrainerUnavailable, TrainingTask

from ...fixtures.tiny_model import TINY_THREADS
from .test_local_trainer import LINE, Recorder
from .test_local_trainer import task as default_task

RUNNER = "{python} -m openglm.tuning.runner {job_dir}"


def trainer(submit: str = RUNNER) -> SubmittedTrainer:
    return SubmittedTrainer(Settings(fine_tuning_submit_command=submit))


@pytest.fixture
def base(tiny_gguf: Path) -> str:
    return str(tiny_gguf)


def task(
    base: str, workdir: Path, lines: list[dict[str, Any]], *, epochs: int = 3, resume: dict[str, Any] | None = None
) -> TrainingTask:
    """test_local_trainer's task (batch 1) on ``base``, in the tiny model's threads."""
    spec = ModelSpec(id="tiny", source=base)
    task = default_task(workdir, lines, epochs=epochs, resume=resume)
    return replace(task, base=spec, base_path=base, threads=TINY_THREADS)


# The tiny model's steps take milliseconds: enough of them that the run is still going when the attempt is stopped
# after the first checkpoint (every 10th step: pipeline.Plan), a fraction of a second later.
STEPS = 100


def processes_in(directory: Path) -> list[str]:
    """Command lines of live processes that name ``directory`` (the runner's)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in text:
            found.append(text)
    return found


def test_an_interrupted_attempt_resumes_from_the_job_directory(base: str, tmp_path: Path) -> None:
    first = Recorder()

    async def stopped_after_the_first_checkpoint() -> None:
        run = asyncio.create_task(trainer().train(task(base, tmp_path, [LINE], epochs=STEPS), first))
        deadline = time.monotonic() + 300
        while not first.checkpoints and not run.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        run.cancel()  # the server stopping: the handler's task cancelled, the job not
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(stopped_after_the_first_checkpoint())
    checkpointed = first.checkpoints[0]["step"]
    assert 0 < checkpointed < STEPS
    per_step = first.checkpoints[0]["trained_tokens"] // checkpointed
    assert any(f"{TINY_THREADS} threads" in m for m in first.messages)  # the runner's report, from events.jsonl
    assert not (tmp_path / "cancel").exists()  # not a cancelled job: nothing asked the run's scheduler to cancel
    assert processes_in(tmp_path) == []  # the submit command's process group ended with the attempt

    second = Recorder()
    resumed = task(base, tmp_path, [LINE], epochs=STEPS, resume=first.checkpoints[-1])
    outcome = asyncio.run(trainer().train(resumed, second))
    steps = [m.step for m in second.progress_reports]
    assert steps[0] > checkpointed and steps[-1] == STEPS  # from the checkpoint, not from the start
    assert outcome.metrics.step == STEPS and outcome.metrics.trained_tokens == STEPS * per_step  # as uninterrupted
    assert outcome.adapter == tmp_path / "adapter.gguf" and outcome.adapter.read_bytes()[:4] == b"GGUF"
    status = read_status(tmp_path)
    assert status is not None and status["status"] == "succeeded"

    # Re-claimed after it succeeded (its worker died before the job was finished): taken as it is, not run again.
    third = Recorder()
    again = asyncio.run(trainer().train(task(base, tmp_path, [LINE], epochs=STEPS), third))
    assert third.messages == [f"the run in {tmp_path} had already succeeded (attempt {status['attempt']})"]
    assert (again.adapter, again.metrics.step) == (outcome.adapter, STEPS)
    assert again.metrics.trained_tokens == STEPS * per_step


def test_without_a_submit_command_the_trainer_is_unavailable(base: str, tmp_path: Path) -> None:
    with pytest.raises(TrainerUnavailable, match="OPENGLM_FINE_TUNING_SUBMIT_COMMAND"):
        asyncio.run(trainer("").train(task(base, tmp_path, [LINE]), Recorder()))


def test_an_unknown_placeholder_fails_the_job_naming_the_known_ones(base: str, tmp_path: Path) -> None:
    with pytest.raises(JobFailed, match=r"KeyError 'jobdir'.*\{job_dir\}, \{job_id\}, \{threads\}, \{python\}"):
        asyncio.run(trainer("sbatch --wait train.sh {jobdir}").train(task(base, tmp_path, [LINE]), Recorder()))


def test_a_command_that_does_not_wait_for_the_run_is_retried_saying_why(base: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingProcessDied, match=r"exited with 0 and the run wrote no status.*Submitted batch job 7"):
        asyncio.run(trainer("echo Submitted batch job 7").train(task(base, tmp_path, [LINE]), Recorder()))


def test_the_command_does_not_see_the_servers_settings(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENGLM_SECRET_KEY", "not-for-the-cluster")
    monkeypatch.setenv("OPENGLM_DATABASE_URL", "postgresql://platform:password@db/openglm")
    with pytest.raises(TrainingProcessDied):
        asyncio.run(trainer("env > {job_dir}/environment").train(task(base, tmp_path, [LINE]), Recorder()))
    seen = (tmp_path / "environment").read_text()
    assert "PATH=" in seen and "OPENGLM_" not in seen
