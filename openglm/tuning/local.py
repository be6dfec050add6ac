"""The ``local`` trainer: LoRA training in torch in a worker process of its own, never on the event loop.

    job handler (event loop)                      training process (spawned, niced)
    LocalTrainer.train ── TrainingTask ─────────▶ child_main: render (serving templates) → load the base from its
         ▲   reads the pipe (a thread polls)          GGUF → Trainer.run (checkpoints in workdir) → export the adapter
         └── progress / checkpoint / done / error ◀─ one message per report
    cancel: an Event the child checks between steps; after a grace period the child is killed (SIGKILL)
    pause: an Event the child checks between steps: it saves a checkpoint, says "paused" and ends

The child is started with the ``spawn`` context (a fresh interpreter: the server has threads, which ``fork`` would
copy in whatever state they were in), lowers its priority (``os.nice``), caps torch's threads at the task's budget
(``OPENGLM_FINE_TUNING_THREADS``) before torch is imported, and dies with its parent (``PR_SET_PDEATHSIG`` on Linux,
and a check of its parent's pid between steps). Torch, transformers and the model live only in the child: the
server's process never imports them for training.

Checkpoints: the child saves the adapter, optimizer and scheduler (``train.py``, atomically) under the job's
``workdir`` and tells the handler, which records ``{"step", "trained_tokens"}`` as the job's checkpoint; an attempt
that runs again (the job re-claimed after its worker died) resumes from that file with exactly the steps an
uninterrupted run takes. The file lives on this machine's disk: a job re-claimed by a worker on another machine
trains from the start (and is billed only for tokens beyond those already billed).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from ..config import Settings
from ..jobs.context import JobCancelled, JobFailed, JobPaused
from .trainers import Metrics, TrainerUnavailable, TrainingOutcome, TrainingReporter, TrainingTask

NICE = 10  # added to the training process's niceness: serving's threads win the cores when both want them
CANCEL_GRACE_SECONDS = 2.0  # how long a cancelled child may take to stop between steps before it is killed
CHECKPOINT_DIR = "checkpoint"
ADAPTER_FILE = "adapter.gguf"


@dataclass(frozen=True)
class Plan:
    """How often a run of ``total_steps`` reports and checkpoints."""

    log_every: int
    checkpoint_every: int

    @classmethod
    def of(cls, total_steps: int) -> Plan:
        # Every step for short runs; about every 1 % (at most every 5 steps) and every 10 % for long ones.
        return cls(log_every=min(5, max(1, total_steps // 100)), checkpoint_every=max(1, total_steps // 10))


class TrainingProcessDied(Exception):
    """The training process ended without a result (killed: out of memory, a signal). Not ``JobFailed``: the job
    system retries it, from the last checkpoint, while attempts remain."""


class ProcessTrainer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.grace = CANCEL_GRACE_SECONDS

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise TrainerUnavailable("the local trainer needs torch and transformers, which are not installed here")
        if not Path(task.base_path).is_file():
            raise JobFailed(
                f"the local trainer trains from the base's GGUF file (the one serving loads); {task.base_path} is not "
                "a file",
                code="base_model_unavailable",
            )
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        cancel, pause = context.Event(), context.Event()
        # Started from the event loop's thread (a short fork-exec): the child's death signal is tied to the thread
        # that started it, and a pool thread may end before the child does.
        process = context.Process(
            target=child_main,
            args=(task, sender, cancel, pause, os.getpid()),
            name=f"train-{task.job_id}",
            daemon=True,
        )
        process.start()
        sender.close()  # the child holds the only writing end: EOF when it ends
        run = _Run(task, reporter, pause, time.monotonic())
        try:
            while True:
                if reporter.cancelled():
                    raise JobCancelled(f"job {task.job_id} was cancelled")
                if reporter.pausing():
                    pause.set()  # the child saves a checkpoint at its next step and says "paused"
                message = await _receive(receiver, process)
                if message is not None:
                    outcome = await run.handle(message, process)
                    if outcome is not None:
                        return outcome
        finally:
            await _stop(process, cancel, self.grace)
            receiver.close()


@dataclass
class _Run:
    """The parent's side of one training process: its messages turned into the reporter's calls."""

    task: TrainingTask
    reporter: TrainingReporter
    pause: Event
    started: float
    history: list[Metrics] = field(default_factory=list)

    async def handle(self, message: tuple[Any, ...], process: BaseProcess) -> TrainingOutcome | None:
        kind = message[0]
        try:
            if kind == "message":
                await self.reporter.message(str(message[1]))
            elif kind == "progress":
                metrics = _metrics(message[1], time.monotonic() - self.started)
                self.history.append(metrics)
                await self.reporter.progress(metrics)
            elif kind == "checkpoint":
                await self.reporter.checkpoint(message[1], _metrics(message[2], time.monotonic() - self.started))
        except JobPaused:  # recorded all the same; what the child does until it stops is recorded too
            self.pause.set()
        if kind == "done":
            final = _metrics(message[2], time.monotonic() - self.started)
            return TrainingOutcome(Path(message[1]), final, self.history)
        if kind == "paused" or (kind == "died" and self.pause.is_set()):
            raise JobPaused(f"job {self.task.job_id} was paused")
        if kind == "error":
            raise JobFailed(f"training failed: {message[1]}", code="training_failed")
        if kind == "died":
            raise TrainingProcessDied(
                f"the training process ended without a result (exit code {process.exitcode}"
                + (", killed by a signal: out of memory?" if (process.exitcode or 0) < 0 else "")
                + ")"
            )
        return None


async def _receive(receiver: Connection, process: BaseProcess) -> tuple[Any, ...] | None:
    """The child's next message; ``("died",)`` once it ended and its pipe is drained; None after a quiet while."""
    ready = await asyncio.to_thread(receiver.poll, 0.25)
    if not ready:
        return ("died",) if not process.is_alive() and not receiver.poll() else None
    try:
        message: tuple[Any, ...] = receiver.recv()
    except (EOFError, OSError):
        return ("died",)
    return message


async def _stop(process: BaseProcess, cancel: Event, grace: float) -> None:
    """Ask the child to stop between steps; kill it if it has not within ``grace`` seconds (or at once if this
    wait is itself cancelled: the server is stopping)."""
    try:
        if process.is_alive():
            cancel.set()
            deadline = time.monotonic() + grace
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)  # after SIGKILL: at once


def _metrics(values: dict[str, Any], elapsed: float) -> Metrics:
    return Metrics(
        step=int(values["step"]),
        total_steps=int(values["total_steps"]),
        epoch=float(values["epoch"]),
        trained_tokens=int(values["trained_tokens"]),
        loss=values.get("loss"),
        eval_loss=values.get("eval_loss"),
        learning_rate=values.get("learning_rate"),
        tokens_per_second=values.get("tokens_per_second"),
        elapsed_seconds=round(elapsed, 3),
        remaining_seconds=values.get("eta_seconds"),
    )


# -- the training process ------------------------------------------------------------------------------------------


def child_main(task: TrainingTask, conn: Connection, cancel: Event, pause: Event, parent: int) -> None:
    """The training process's entry point (spawned: imports torch afresh)."""
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    threads = str(max(1, task.threads))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads  # read when torch loads, below
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    def send(*message: Any) -> None:
        conn.send(message)

    def should_stop() -> bool:
        return cancel.is_set() or os.getppid() != parent

    try:
        adapter, final = run(task, send, should_stop, pause.is_set)
    except BaseException as exc:  # reported to the handler, whatever it was
        with contextlib.suppress(OSError):
            if type(exc).__name__ == "TrainingPaused":  # its checkpoint was saved (and reported) first
                send("paused")
            elif type(exc).__name__ != "TrainingCancelled":  # cancelled: the handler knows why
                send("error", f"{type(exc).__name__}: {exc}"[:2000])
        return
    send("done", str(adapter), final)
    conn.close()


def run(task: TrainingTask, send: Any, should_stop: Any, should_pause: Any = None) -> tuple[Path, dict[str, Any]]:
    """Render the lines with the serving template, load the base, train (resuming from ``workdir``), export."""
    import torch
    from transformers.utils import logging as transformers_logging

    from .export import export_adapter
    from .lora import LoRAConfig
    from .render import Example, Preference, Renderer
    from .train import Hyperparameters, Progress, Trainer, load_base_model

    transformers_logging.disable_progress_bar()  # the dequantizing bar is noise in the server's log
    torch.set_num_threads(max(1, task.threads))
    began = time.monotonic()
    renderer = Renderer.for_gguf(task.base_path, task.base.template, task.base.tool_parser)
    try:
        architecture = renderer.tokenizer.model.architecture  # type: ignore[attr-defined]
        train_items: list[Example] | list[Preference]
        valid_items: list[Example] | list[Preference]
        if task.method == "dpo":
            train_items = [renderer.preference(line) for line in task.training]
            valid_items = [renderer.preference(line) for line in task.validation]
        else:
            train_items = [e for line in task.training for e in renderer.chat(line)]
            valid_items = [e for line in task.validation for e in renderer.chat(line)]
    finally:
        renderer.tokenizer.close()  # type: ignore[attr-defined]
    model = load_base_model(task.base_path, threads=max(1, task.threads))
    hp = task.hyperparameters
    total = -(-len(train_items) // hp.batch_size) * hp.n_epochs
    plan = Plan.of(total)
    hyperparameters = Hyperparameters(
        method=task.method,
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        learning_rate_multiplier=hp.learning_rate_multiplier,
        beta=hp.beta if hp.beta is not None else 0.1,
        seed=hp.seed,
        lora=LoRAConfig(
            rank=hp.lora_rank, alpha=hp.lora_alpha, dropout=hp.lora_dropout, targets=tuple(hp.lora_target_modules)
        ),
        log_every=plan.log_every,
        checkpoint_every=plan.checkpoint_every,
    )
    checkpoints = task.workdir / CHECKPOINT_DIR

    class Reporting(Trainer):
        def save_checkpoint(self, step: int, trained_tokens: int, *args: Any) -> Path:
            path = super().save_checkpoint(step, trained_tokens, *args)
            values = {
                "step": step,
                "total_steps": self.total_steps,
                "epoch": step / self.steps_per_epoch,
                "trained_tokens": trained_tokens,
            }
            send("checkpoint", {"step": step, "trained_tokens": trained_tokens}, values)
            return path

    def progress(report: Progress) -> None:
        send("progress", asdict(report))

    trainer = Reporting(
        model,
        train_items,
        hyperparameters,
        validation=valid_items,
        checkpoint_dir=checkpoints,
        on_progress=progress,
        should_cancel=should_stop,
        should_pause=should_pause,
        threads=max(1, task.threads),
    )
    send(
        "message",
        f"loaded {task.base.id} for training in {time.monotonic() - began:.1f} s: {len(train_items)} "
        f"{'pairs' if task.method == 'dpo' else 'examples'}, {trainer.total_steps} steps, "
        f"{torch.get_num_threads()} threads, niceness {os.nice(0)}",
    )
    result = trainer.run()
    adapter = export_adapter(model, task.workdir / ADAPTER_FILE, architecture=architecture)
    last = result.history[-1] if result.history else None
    final = {
        "step": result.steps,
        "total_steps": trainer.total_steps,
        "epoch": result.steps / trainer.steps_per_epoch,
        "trained_tokens": result.trained_tokens,
        "loss": result.loss,
        "eval_loss": result.eval_loss,
        "learning_rate": last.learning_rate if last else None,
        "tokens_per_second": last.tokens_per_second if last else None,
        "eta_seconds": 0.0,
    }
    return adapter, final


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that started it ends (the server died), so no orphaned
    training goes on using the cores."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
