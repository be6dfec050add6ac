"""The ``command`` trainer: a cluster trains — Slurm, Kubernetes, anything a shell command can submit to and wait
on — by running ``python -m openglm.tuning.runner JOB_DIR`` (``runner.py``: the training code the ``local``
trainer's process runs) on a job directory this server writes.

    SubmittedTrainer.train
      write the job directory         job.json, the validated lines, a new ``attempt`` (runner.py's layout)
      run the submit command          OPENGLM_FINE_TUNING_SUBMIT_COMMAND, e.g. ``sbatch --wait train.sh {job_dir}``,
                                      in its own session, output to JOB_DIR/submit.log; it returns when the run ends
      tail JOB_DIR/events.jsonl       this attempt's lines → pipeline.Relay → the reporter (progress billed, shown)
      the command exits               status.json: succeeded → the adapter in JOB_DIR; failed → the job fails with
                                      the run's error; none → retried (a node lost, a job preempted)
      cancelled here                  a ``cancel`` file in JOB_DIR (the runner stops between steps), the cancel
                                      command if one is set (``scancel --name {job_id}``), then the submit
                                      command's process group is killed after a grace period
      paused here                     a ``pause`` file in JOB_DIR: the runner saves a checkpoint at its next step,
                                      says ``paused`` (status.json too) and ends; the attempt ends paused, and the
                                      job's resume submits a new attempt that goes on from that checkpoint

Resuming: the runner resumes from ``JOB_DIR/checkpoint`` whatever machine it lands on, since the directory is
shared; a run that already succeeded (the worker died after it) is taken as it is, not run again. A new attempt
writes its own ``attempt`` token: a runner of an earlier attempt still going (its submit command outlived the
worker that waited on it) stops at its next step, and its events and status are ignored.

The submit command gets this server's environment without ``OPENGLM_*`` variables: the database URL, secret key
and remote API key have no business on a cluster's nodes (``sbatch`` exports the environment to the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from ..jobs.context import JobCancelled, JobFailed, JobPaused
from .pipeline import ADAPTER_FILE, Relay, TrainingProcessDied, metrics_of
from .runner import CANCEL_FILE, EVENTS_FILE, PAUSE_FILE, read_status, write_job
from .trainers import TrainerUnavailable, TrainingOutcome, TrainingReporter, TrainingTask

CANCEL_GRACE_SECONDS = 10.0  # a cancelled run's time to stop between steps before its command's processes are killed
CANCEL_COMMAND_TIMEOUT = 60.0
POLL_SECONDS = 0.25  # how often events.jsonl is read while the command runs
SUBMIT_LOG = "submit.log"
PLACEHOLDERS = ("job_dir", "job_id", "threads", "python")


class SubmittedTrainer:
    def __init__(self, settings: Settings):
        self.submit = settings.fine_tuning_submit_command
        self.cancel = settings.fine_tuning_cancel_command
        self.grace = CANCEL_GRACE_SECONDS

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        if not self.submit:
            raise TrainerUnavailable(
                "the command trainer needs OPENGLM_FINE_TUNING_SUBMIT_COMMAND (a command that runs "
                "`python -m openglm.tuning.runner {job_dir}` and waits for it, e.g. `sbatch --wait train.sh {job_dir}`)"
            )
        if not Path(task.base_path).is_file():
            raise JobFailed(
                f"the runner trains from the base's GGUF file, which must be at the same path on the cluster; "
                f"{task.base_path} is not a file here",
                code="base_model_unavailable",
            )
        job_dir = task.workdir
        done = read_status(job_dir)
        if done and done.get("status") == "succeeded" and (job_dir / ADAPTER_FILE).is_file():
            await reporter.message(f"the run in {job_dir} had already succeeded (attempt {done.get('attempt')})")
            return TrainingOutcome(job_dir / ADAPTER_FILE, metrics_of(done["final"], 0.0))
        command = render(self.submit, task, "OPENGLM_FINE_TUNING_SUBMIT_COMMAND")
        cancel_command = render(self.cancel, task, "OPENGLM_FINE_TUNING_CANCEL_COMMAND") if self.cancel else None
        attempt = secrets.token_hex(8)
        await asyncio.to_thread(write_job, job_dir, task, attempt)
        process = await _start(command, job_dir)
        await reporter.message(f"submitted attempt {attempt}: {command}")
        try:
            return await self._follow(task, reporter, process, attempt)
        except (JobCancelled, asyncio.CancelledError):
            # Only a cancelled job cancels its run; a stopping server or a lost lease leaves it for the next
            # attempt, which supersedes it (its command's processes here are killed below either way).
            if reporter.cancelled():
                await self._cancel(job_dir, cancel_command, process, reporter)
            raise
        finally:
            stopping = reporter.cancelled() or (job_dir / PAUSE_FILE).exists()  # the run ends on its own: let it
            await _kill(process, self.grace if process.returncode is None and stopping else 0.0)

    async def _follow(
        self, task: TrainingTask, reporter: TrainingReporter, process: asyncio.subprocess.Process, attempt: str
    ) -> TrainingOutcome:
        relay = Relay(task, reporter, (task.workdir / PAUSE_FILE).touch)
        events = EventTail(task.workdir / EVENTS_FILE, attempt)
        while True:
            if reporter.cancelled():
                raise JobCancelled(f"job {task.job_id} was cancelled")
            relay.poll()  # pausing: the pause file, which the runner checks between steps
            for message in await asyncio.to_thread(events.read):
                await relay.handle(message)  # ``error`` fails the job here, ``paused`` ends the attempt paused
            if process.returncode is not None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), POLL_SECONDS)
        for message in await asyncio.to_thread(events.read):
            await relay.handle(message)
        return self._ended(task, relay, process.returncode, attempt)

    def _ended(self, task: TrainingTask, relay: Relay, exit_code: int | None, attempt: str) -> TrainingOutcome:
        status = read_status(task.workdir)
        ours = status is not None and status.get("attempt") == attempt
        if (ours and status is not None and status.get("status") == "paused") or (not ours and relay.pausing):
            # Paused, or ended without a word while pausing: its last checkpoint in JOB_DIR stands; resumed from it.
            raise JobPaused(f"job {task.job_id} was paused")
        if status is None or not ours:
            raise TrainingProcessDied(
                f"the submit command exited with {exit_code} and the run wrote no status (the command must wait for "
                f"the run to end; a lost node or a preempted job is retried){_log_tail(task.workdir)}"
            )
        if status.get("status") == "succeeded":
            if relay.outcome is not None:
                return relay.outcome
            return TrainingOutcome(task.workdir / ADAPTER_FILE, metrics_of(status["final"], 0.0), relay.history)
        if status.get("status") == "failed":
            raise JobFailed(f"training failed: {status.get('error')}", code="training_failed")
        # Stopped on the cluster, not by this job's cancel (a preemption, an operator's scancel): tried again
        # from its checkpoint while attempts remain.
        raise TrainingProcessDied(f"the run was stopped by its scheduler ({status.get('error')})")

    async def _cancel(
        self,
        job_dir: Path,
        cancel_command: str | None,
        process: asyncio.subprocess.Process,
        reporter: TrainingReporter,
    ) -> None:
        """Tell the run to stop (the cancel file, then the scheduler's cancel command); ``_kill`` waits for it."""
        (job_dir / CANCEL_FILE).touch()
        if cancel_command is None:
            return
        cancelling = await _start(cancel_command, job_dir)
        try:
            code = await asyncio.wait_for(cancelling.wait(), CANCEL_COMMAND_TIMEOUT)
        except TimeoutError:
            code = None
        finally:
            await _kill(cancelling, 0.0)
        if code != 0:
            with contextlib.suppress(Exception):
                await reporter.message(f"the cancel command {cancel_command!r} ended with {code}{_log_tail(job_dir)}")


class EventTail:
    """New complete lines of an attempt's ``events.jsonl`` since the last read (other attempts' are skipped)."""

    def __init__(self, path: Path, attempt: str):
        self.path = path
        self.attempt = attempt
        self.offset = 0
        self.partial = b""

    def read(self) -> list[list[Any]]:
        try:
            with self.path.open("rb") as events:
                events.seek(self.offset)
                data = events.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        messages: list[list[Any]] = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not the runner's (a line another program wrote)
            if isinstance(event, dict) and event.get("attempt") == self.attempt and event.get("message"):
                messages.append(list(event["message"]))
        return messages


def render(template: str, task: TrainingTask, setting: str) -> str:
    """The command with its placeholders filled in, each value shell-quoted."""
    values = {
        "job_dir": str(task.workdir),
        "job_id": task.job_id,
        "threads": str(task.threads),
        "python": sys.executable,
    }
    try:
        return template.format_map({name: shlex.quote(value) for name, value in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise JobFailed(
            f"{setting}: {type(exc).__name__} {exc} in {template!r}; the placeholders are "
            + ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            + " (write {{ and }} for literal braces)",
            code="trainer_unavailable",
        ) from None


async def _start(command: str, job_dir: Path) -> asyncio.subprocess.Process:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OPENGLM_")}
    with (job_dir / SUBMIT_LOG).open("ab") as log:
        return await asyncio.create_subprocess_shell(
            command,
            cwd=job_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group: killed as one, and not by a signal meant for the server
        )


async def _kill(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait up to ``grace`` seconds for the command to end, then end its process group: SIGTERM, SIGKILL. Each
    signal waits for the whole group, not only the shell: a local runner in it stops between steps on SIGTERM and
    outlives the shell, which a signal ends at once."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    for number, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, number)  # also what it started in its group (a local runner)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while _group_running(process.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not _group_running(process.pid):
            break
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 1.0)  # the shell reaped


def _group_running(group: int) -> bool:
    """Whether a process of ``group`` still runs; a zombie (ended, not yet reaped by its parent) does not."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if int(process_group) == group and state != "Z":
            return True
    return False


def _log_tail(job_dir: Path) -> str:
    try:
        text = (job_dir / SUBMIT_LOG).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f"; {SUBMIT_LOG}: …{text[-500:]}" if text else ""
