"""The ``command`` trainer (``openglm/tuning/command.py``) with a real submit command — a shell running the real
runner (``python -m openglm.tuning.runner {job_dir}``) on the tiny random llama (tests/fixtures/tiny_model.py: the
default's tokenizer and template, 2 layers of 64; what is tested is the plumbing, not what a model learns): an
attempt interrupted by a stopping server is resumed from the job directory's checkpoint by the next, and a run that
already succeeded is not run again; a paused one stops at its next step with a checkpoint there and the next
attempt goes on from it. Misconfigured commands fail or retry saying why, and the command never sees the server's
OPENGLM_* secrets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from openglm.config import Settings
from openglm.jobs.context import JobFailed, JobPaused
from openglm.tuning.command import SubmittedTrainer
from openglm.tuning.pipeline import TrainingProcessDied
from openglm.tuning.runner import PAUSE_FILE, read_status
from openglm.tuning.trainers import TrainerUnavailable

from ...fixtures.tiny_model import TINY_THREADS
from .test_local_trainer import LINE, STEPS, Recorder, task

RUNNER = "{python} -m openglm.tuning.runner {job_dir}"


def trainer(submit: str = RUNNER) -> SubmittedTrainer:
    return SubmittedTrainer(Settings(fine_tuning_submit_command=submit))


def processes_in(directory: Path, within: float = 3.0) -> list[str]:
    """Command lines of live processes that name ``directory`` (the runner's), still there after ``within``
    seconds (a SIGKILLed process takes a moment to be gone from /proc on a busy machine)."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in text:
                found.append(text)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_an_interrupted_attempt_resumes_from_the_job_directory(tiny_gguf: Path, tmp_path: Path) -> None:
    first = Recorder()

    async def stopped_after_the_first_checkpoint() -> None:
        run = asyncio.create_task(trainer().train(task(tiny_gguf, tmp_path, [LINE], epochs=STEPS), first))
        deadline = time.monotonic() + 300
        while not first.checkpoints and not run.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        run.cancel()  # the server stopping: the handler's task cancelled, the job not
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(stopped_after_the_first_checkpoint())
    every = first.checkpoints[0]["step"]
    assert every == STEPS // 10  # pipeline.Plan: a checkpoint every 10 % of the steps
    per_step = first.checkpoints[0]["trained_tokens"] // every
    assert any(f"{TINY_THREADS} threads" in m for m in first.messages)  # the runner's report, from events.jsonl
    assert not (tmp_path / "cancel").exists()  # not a cancelled job: nothing asked the run's scheduler to cancel
    assert processes_in(tmp_path) == []  # the submit command's process group ended with the attempt

    second = Recorder()
    resumed = task(tiny_gguf, tmp_path, [LINE], epochs=STEPS, resume=first.checkpoints[-1])
    outcome = asyncio.run(trainer().train(resumed, second))
    steps = [m.step for m in second.progress_reports]
    # From a checkpoint (the first, or one the stopping run saved after it), not from the start.
    assert steps[0] > every and (steps[0] - 1) % every == 0 and steps[-1] == STEPS
    assert outcome.metrics.step == STEPS and outcome.metrics.trained_tokens == STEPS * per_step  # as uninterrupted
    assert outcome.adapter == tmp_path / "adapter.gguf" and outcome.adapter.read_bytes()[:4] == b"GGUF"
    status = read_status(tmp_path)
    assert status is not None and status["status"] == "succeeded"

    # Re-claimed after it succeeded (its worker died before the job was finished): taken as it is, not run again.
    third = Recorder()
    again = asyncio.run(trainer().train(task(tiny_gguf, tmp_path, [LINE], epochs=STEPS), third))
    assert third.messages == [f"the run in {tmp_path} had already succeeded (attempt {status['attempt']})"]
    assert (again.adapter, again.metrics.step) == (outcome.adapter, STEPS)
    assert again.metrics.trained_tokens == STEPS * per_step


def test_a_paused_run_checkpoints_where_it_stopped_and_the_next_attempt_goes_on_from_there(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    """The pause file asked once a step was reported: the runner saves a checkpoint at its next step, says
    "paused" (status.json too) and ends; the attempt ends JobPaused. The resumed attempt trains the rest only."""
    steps = STEPS
    first = Recorder(pause_after=1)
    with pytest.raises(JobPaused):
        asyncio.run(trainer().train(task(tiny_gguf, tmp_path, [LINE], epochs=steps), first))
    paused_at = first.checkpoints[-1]["step"]
    assert first.progress_reports[-1].step == paused_at < steps
    status = read_status(tmp_path)
    assert status is not None and status["status"] == "paused"
    assert (tmp_path / PAUSE_FILE).exists() and processes_in(tmp_path) == []

    second = Recorder()
    resumed = task(tiny_gguf, tmp_path, [LINE], epochs=steps, resume=first.checkpoints[-1])
    outcome = asyncio.run(trainer().train(resumed, second))
    assert [m.step for m in second.progress_reports] == list(range(paused_at + 1, steps + 1))
    assert not (tmp_path / PAUSE_FILE).exists()  # the new attempt cleared it
    per_step = first.checkpoints[0]["trained_tokens"] // first.checkpoints[0]["step"]
    assert outcome.metrics.step == steps and outcome.metrics.trained_tokens == steps * per_step


def test_without_a_submit_command_the_trainer_is_unavailable(tiny_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainerUnavailable, match="OPENGLM_FINE_TUNING_SUBMIT_COMMAND"):
        asyncio.run(trainer("").train(task(tiny_gguf, tmp_path, [LINE]), Recorder()))


def test_an_unknown_placeholder_fails_the_job_naming_the_known_ones(tiny_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(JobFailed, match=r"KeyError 'jobdir'.*\{job_dir\}, \{job_id\}, \{threads\}, \{python\}"):
        asyncio.run(trainer("sbatch --wait train.sh {jobdir}").train(task(tiny_gguf, tmp_path, [LINE]), Recorder()))


def test_a_command_that_does_not_wait_for_the_run_is_retried_saying_why(tiny_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingProcessDied, match=r"exited with 0 and the run wrote no status.*Submitted batch job 7"):
        asyncio.run(trainer("echo Submitted batch job 7").train(task(tiny_gguf, tmp_path, [LINE]), Recorder()))


def test_the_command_does_not_see_the_servers_settings(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENGLM_SECRET_KEY", "not-for-the-cluster")
    monkeypatch.setenv("OPENGLM_DATABASE_URL", "postgresql://platform:password@db/openglm")
    with pytest.raises(TrainingProcessDied):
        asyncio.run(trainer("env > {job_dir}/environment").train(task(tiny_gguf, tmp_path, [LINE]), Recorder()))
    seen = (tmp_path / "environment").read_text()
    assert "PATH=" in seen and "OPENGLM_" not in seen
