"""The ``local`` trainer's worker process (``openglm/tuning/local.py``) on the tiny random llama
(tests/fixtures/tiny_model.py: the default's tokenizer and template, 2 layers of 64; what is tested is the process,
not what a model learns): training runs in a spawned, niced child that reports progress and checkpoints to the
reporter; a cancelled job's child is stopped within seconds (killed when it is mid-step) and a re-run resumes from
its checkpoint; a paused one stops at its next step with a checkpoint there, and trains on from it with the job's
LoRA settings; a child that dies or fails is reported as such. The reporter here records what the job handler would
be told."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.jobs.context import JobCancelled, JobFailed, JobPaused
from openglm.tuning.local import NICE, ProcessTrainer, TrainingProcessDied
from openglm.tuning.lora_settings import LoRASettings, adapter_bytes
from openglm.tuning.trainers import Hyperparameters, Metrics, TrainingTask, trainers

from ...fixtures.tiny_model import N_EMBD, TINY_THREADS

LINE = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
# The tiny model's steps take milliseconds: enough of them that a run is still going when it is stopped (after its
# first checkpoint, at 10 % of the steps: pipeline.Plan) or paused, a fraction of a second later.
STEPS = 100


def task(
    base: str | os.PathLike[str],
    workdir: Path,
    lines: list[dict[str, Any]],
    *,
    epochs: int = 3,
    resume: dict[str, Any] | None = None,
    hyperparameters: Hyperparameters | None = None,
) -> TrainingTask:
    """A job of ``lines`` on the GGUF ``base`` (the tiny model's: ``tiny_gguf``), in the tiny model's threads."""
    return TrainingTask(
        job_id="ftjob-test",
        base=ModelSpec(id="tiny", source=str(base)),
        base_path=str(base),
        method="supervised",
        training=lines,
        validation=[],
        hyperparameters=hyperparameters
        or Hyperparameters(n_epochs=epochs, batch_size=1, learning_rate_multiplier=1.0, seed=3),
        workdir=workdir,
        resume=resume,
        threads=TINY_THREADS,
    )


class Recorder:
    """A TrainingReporter that keeps what it was told; ``cancel_after_checkpoint`` asks to cancel once one came."""

    def __init__(self, *, cancel_after_checkpoint: bool = False, on_poll: Any = None, pause_after: int = 0):
        self.pause_after = pause_after  # ask to pause once this many steps were reported (0: never)
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

    def pausing(self) -> bool:
        return 0 < self.pause_after <= len(self.progress_reports)


def test_the_local_trainer_is_registered_and_imports_nothing_heavy() -> None:
    assert trainers.get("local") is not None
    code = "import sys, openglm.tuning.handler, openglm.tuning.trainers; print('torch' in sys.modules)"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


LORA = LoRASettings(rank=4, alpha=8.0, targets=("q_proj", "v_proj"))


def test_cancelled_then_paused_then_resumed_in_a_niced_process_with_the_job_s_lora(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    """Attempt 1 is cancelled after its first checkpoint: the child, busy with a later step, is stopped within seconds.
    Attempt 2 (the job re-claimed) resumes from the checkpoint; a pause is asked once it reported a step, so the
    child stops at its next step boundary with a checkpoint there and says so (JobPaused). Attempt 3 (resumed)
    trains the steps after it only and exports the adapter, with the job's rank, alpha and targets (q and v only)
    and the size ``adapter_bytes`` predicted when the job was created."""
    steps = STEPS
    hp = Hyperparameters(
        n_epochs=steps,
        batch_size=1,
        learning_rate_multiplier=1.0,
        seed=3,
        lora_rank=LORA.rank,
        lora_alpha=LORA.alpha,
        lora_target_modules=LORA.targets,
    )
    trainer = ProcessTrainer(Settings())
    first = Recorder(cancel_after_checkpoint=True)
    with pytest.raises(JobCancelled):
        asyncio.run(trainer.train(task(tiny_gguf, tmp_path, [LINE], hyperparameters=hp), first))
    assert first.cancelled_at is not None
    assert time.monotonic() - first.cancelled_at < 5.0  # the grace (2 s), then SIGKILL
    assert multiprocessing.active_children() == []
    every = first.checkpoints[0]["step"]
    assert every == steps // 10  # pipeline.Plan: a checkpoint every 10 % of the steps
    assert any(f"{TINY_THREADS} threads" in m for m in first.messages)
    per_step = first.checkpoints[0]["trained_tokens"] // every

    second = Recorder(pause_after=1)
    with pytest.raises(JobPaused):
        asyncio.run(
            trainer.train(task(tiny_gguf, tmp_path, [LINE], hyperparameters=hp, resume=first.checkpoints[-1]), second)
        )
    paused_at = second.checkpoints[-1]["step"]
    resumed_at = second.progress_reports[0].step
    # From the first checkpoint, or one the child saved before the cancel reached it: not from the start.
    assert resumed_at > every and (resumed_at - 1) % every == 0
    assert second.progress_reports[-1].step == paused_at < steps
    assert set(second.niceness) == {NICE}  # the child runs niced beside this process
    assert multiprocessing.active_children() == []

    third = Recorder()
    resumed = task(tiny_gguf, tmp_path, [LINE], hyperparameters=hp, resume=second.checkpoints[-1])
    outcome = asyncio.run(trainer.train(resumed, third))
    assert [m.step for m in third.progress_reports] == list(range(paused_at + 1, steps + 1))
    assert all(m.total_steps == steps for m in third.progress_reports)
    assert outcome.metrics.step == steps and outcome.metrics.trained_tokens == steps * per_step  # as if uninterrupted
    last = third.progress_reports[-1]
    assert last.loss is not None and last.learning_rate is not None and last.remaining_seconds == 0
    assert last.tokens_per_second is not None and last.tokens_per_second > 0 and last.elapsed_seconds
    assert outcome.adapter == tmp_path / "adapter.gguf" and outcome.adapter.read_bytes()[:4] == b"GGUF"
    assert multiprocessing.active_children() == []

    import gguf as gguf_package

    adapter = gguf_package.GGUFReader(str(outcome.adapter))
    assert {t.name.split(".")[2] for t in adapter.tensors} == {"attn_q", "attn_v"}
    lora_a = next(t for t in adapter.tensors if t.name.endswith("attn_q.weight.lora_a"))
    assert sorted(int(d) for d in lora_a.shape) == [4, N_EMBD]
    alpha = adapter.fields["adapter.lora.alpha"]
    assert float(alpha.parts[alpha.data[0]][0]) == 8.0
    # The size predicted when the job was created, not below the file's (its allowance for the GGUF header is most of
    # the difference on an adapter this small; the estimate on the default's shapes: test_service.py).
    predicted = adapter_bytes(str(tiny_gguf), LORA)
    assert predicted is not None and 0 <= predicted - outcome.adapter.stat().st_size < 2 * 1024


def test_a_child_that_dies_is_reported_as_died(tiny_gguf: Path, tmp_path: Path) -> None:
    def kill_children() -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)

    with pytest.raises(TrainingProcessDied, match="exit code -9"):
        asyncio.run(
            ProcessTrainer(Settings()).train(task(tiny_gguf, tmp_path, [LINE]), Recorder(on_poll=kill_children))
        )


def test_a_failure_in_the_child_fails_the_job_saying_why(tiny_gguf: Path, tmp_path: Path) -> None:
    no_reply = {"messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(JobFailed, match=r"training failed: .*at least one assistant message"):
        asyncio.run(ProcessTrainer(Settings()).train(task(tiny_gguf, tmp_path, [no_reply]), Recorder()))


def test_a_base_that_is_not_a_gguf_file_is_refused_before_any_process(tiny_gguf: Path, tmp_path: Path) -> None:
    bad = task(tiny_gguf, tmp_path, [LINE])
    bad = TrainingTask(**{**bad.__dict__, "base_path": str(tmp_path)})
    with pytest.raises(JobFailed, match="GGUF"):
        asyncio.run(ProcessTrainer(Settings()).train(bad, Recorder()))
