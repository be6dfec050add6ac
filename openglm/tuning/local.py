"""The ``local`` trainer: LoRA training in torch in a worker process of its own, never on the event loop.

    job handler (event loop)                      training process (spawned, niced)
    LocalTrainer.train ── TrainingTask ─────────▶ child_main → pipeline.run: render (serving templates) → load the
         ▲   reads the pipe (a thread polls)          base from its GGUF → Trainer.run (checkpoints in workdir) → export
         └── pipeline.Relay ◀─ progress / checkpoint / done / error, one message per report
    cancel: an Event the child checks between steps; after a grace period the child is killed (SIGKILL)
    pause: an Event the child checks between steps: it saves a checkpoint, says "paused" and ends (``JobPaused``)

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
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from ..config import Settings
from ..jobs.context import JobCancelled, JobFailed, JobPaused
from .pipeline import Relay, TrainingProcessDied, limit_threads, run
from .trainers import TrainerUnavailable, TrainingOutcome, TrainingReporter, TrainingTask

__all__ = ["NICE", "ProcessTrainer", "TrainingProcessDied", "child_main"]

NICE = 10  # added to the training process's niceness: serving's threads win the cores when both want them
CANCEL_GRACE_SECONDS = 2.0  # how long a cancelled child may take to stop between steps before it is killed


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
        relay = Relay(task, reporter, pause.set)
        try:
            while True:
                if reporter.cancelled():
                    raise JobCancelled(f"job {task.job_id} was cancelled")
                relay.poll()  # pausing: the child saves a checkpoint at its next step and says "paused"
                message = await _receive(receiver, process)
                if message is None:
                    continue
                if message[0] == "died" and relay.pausing:  # its last checkpoint stands; resumed from it
                    raise JobPaused(f"job {task.job_id} was paused")
                if message[0] == "died":
                    raise TrainingProcessDied(
                        f"the training process ended without a result (exit code {process.exitcode}"
                        + (", killed by a signal: out of memory?" if (process.exitcode or 0) < 0 else "")
                        + ")"
                    )
                outcome = await relay.handle(message)
                if outcome is not None:
                    return outcome
        finally:
            await _stop(process, cancel, self.grace)
            receiver.close()


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


# -- the training process ------------------------------------------------------------------------------------------


def child_main(task: TrainingTask, conn: Connection, cancel: Event, pause: Event, parent: int) -> None:
    """The training process's entry point (spawned: imports torch afresh)."""
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    limit_threads(task.threads)  # before torch loads, in ``run``

    def send(*message: Any) -> None:
        conn.send(message)

    def should_stop() -> bool:
        return cancel.is_set() or os.getppid() != parent

    try:
        adapter, final = run(task, send, should_stop, pause.is_set)
    except BaseException as exc:  # reported to the handler, whatever it was
        with contextlib.suppress(OSError):
            if type(exc).__name__ == "TrainingPaused":  # train.py's; its checkpoint was saved (and reported) first
                send("paused")
            elif type(exc).__name__ != "TrainingCancelled":  # cancelled: the handler knows why
                send("error", f"{type(exc).__name__}: {exc}"[:2000])
        return
    send("done", str(adapter), final)
    conn.close()


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
