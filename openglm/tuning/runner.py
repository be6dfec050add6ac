"""``python -m openglm.tuning.runner JOB_DIR [--threads N]``: one fine-tuning run in a job directory, on whatever
machine a scheduler put it — the ``command`` trainer's far side (``command.py``). It runs ``pipeline.run``, the
code the ``local`` trainer's process runs: the same renderer, trainer, checkpoints and export.

The job directory (written by the platform on a filesystem both sides see at the same path):

    job.json          the base (catalog id, GGUF path, template, tool-call format), method, hyperparameters, threads,
                      and "continues": the name of the adapter file a continued job starts from, or null
    continues.gguf    that adapter (a job that continues a fine-tuned model)
    training.jsonl    the validated training lines (rendered here, by the serving templates: one renderer)
    validation.jsonl  the validation lines (may be empty)
    attempt           the platform's current attempt; a runner whose attempt is no longer written here stops
    cancel            present: stop between steps (the platform's cancel; SIGTERM, as schedulers send, does too)
    pause             present: save a checkpoint at the next step, then stop (the platform's pause)
    events.jsonl      written here: one JSON object a line, {"attempt", "message": [kind, ...]} (pipeline's messages)
    checkpoint/       written here: the torch checkpoint a later run resumes from
    adapter.gguf      written here: the exported LoRA adapter
    status.json       written here, last: {"attempt", "status": succeeded | failed | cancelled | paused, "error",
                      "final"}

Exit status: 0 succeeded, 1 failed, 2 cancelled (or superseded by a later attempt, which then owns status.json),
3 paused (the checkpoint holds every step taken; the job's resume runs the runner again, which goes on from it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..catalog import ModelSpec
from .pipeline import CONTINUES_FILE, limit_threads, run
from .trainers import Hyperparameters, TrainingTask

JOB_FILE = "job.json"
TRAINING_FILE = "training.jsonl"
VALIDATION_FILE = "validation.jsonl"
ATTEMPT_FILE = "attempt"
CANCEL_FILE = "cancel"
PAUSE_FILE = "pause"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
FORMAT = 1


def write_job(job_dir: Path, task: TrainingTask, attempt: str) -> None:
    """The platform's side: the job's files for a new attempt (the lines once; the cancel and pause flags of an
    earlier attempt removed; ``attempt`` last, which supersedes any runner still going)."""
    job = {
        "format": FORMAT,
        "job_id": task.job_id,
        "method": task.method,
        "base": {
            "id": task.base.id,
            "path": task.base_path,
            "template": task.base.template,
            "tool_parser": task.base.tool_parser,
        },
        "hyperparameters": asdict(task.hyperparameters),
        "threads": task.threads,
        "continues": CONTINUES_FILE if task.continues is not None else None,
    }
    copy = job_dir / CONTINUES_FILE
    if task.continues is not None and task.continues != copy and not copy.exists():
        shutil.copyfile(task.continues, copy.with_suffix(".partial"))
        os.replace(copy.with_suffix(".partial"), copy)
    for name, lines in ((TRAINING_FILE, task.training), (VALIDATION_FILE, task.validation)):
        if not (job_dir / name).exists():
            _write_atomically(job_dir / name, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    _write_atomically(job_dir / JOB_FILE, json.dumps(job, indent=1))
    (job_dir / CANCEL_FILE).unlink(missing_ok=True)
    (job_dir / PAUSE_FILE).unlink(missing_ok=True)
    _write_atomically(job_dir / ATTEMPT_FILE, attempt)


def read_task(job_dir: Path, threads: int | None = None) -> TrainingTask:
    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    if job.get("format") != FORMAT:
        raise ValueError(f"{job_dir / JOB_FILE}: format {job.get('format')!r}; this runner reads format {FORMAT}")
    base = job["base"]
    return TrainingTask(
        job_id=job["job_id"],
        base=ModelSpec(id=base["id"], source=base["path"], template=base["template"], tool_parser=base["tool_parser"]),
        base_path=base["path"],
        method=job["method"],
        training=_lines(job_dir / TRAINING_FILE),
        validation=_lines(job_dir / VALIDATION_FILE),
        hyperparameters=Hyperparameters.of(job["hyperparameters"]),
        workdir=job_dir,
        threads=threads or int(job["threads"]),
        continues=job_dir / CONTINUES_FILE if job.get("continues") else None,
    )


def read_status(job_dir: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((job_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return status


def current_attempt(job_dir: Path) -> str:
    try:
        return (job_dir / ATTEMPT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openglm.tuning.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the job's setting)")
    args = parser.parse_args(argv)
    job_dir: Path = args.job_dir.resolve()
    attempt = current_attempt(job_dir)
    task = read_task(job_dir, args.threads)
    limit_threads(task.threads)  # before torch loads, in ``run``
    signalled: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):  # a scheduler's cancel or preemption: stop between steps
        signal.signal(number, lambda sig, _frame: signalled.append(sig))

    def superseded() -> bool:
        return current_attempt(job_dir) != attempt

    def should_stop() -> bool:
        return bool(signalled) or (job_dir / CANCEL_FILE).exists() or superseded()

    def should_pause() -> bool:
        return (job_dir / PAUSE_FILE).exists()

    with (job_dir / EVENTS_FILE).open("a", encoding="utf-8") as events:

        def send(*message: Any) -> None:
            events.write(json.dumps({"attempt": attempt, "message": list(message)}) + "\n")
            events.flush()

        def finish(status: str, **values: Any) -> None:
            if not superseded():  # the later attempt owns the status
                _write_atomically(job_dir / STATUS_FILE, json.dumps({"attempt": attempt, "status": status, **values}))

        try:
            adapter, final = run(task, send, should_stop, should_pause)
        except BaseException as exc:  # reported to the platform, whatever it was
            if type(exc).__name__ == "TrainingPaused":  # train.py's, not imported here before torch
                send("paused")
                finish("paused", error=str(exc))
                return 3
            if type(exc).__name__ == "TrainingCancelled":
                finish("cancelled", error=str(exc))
                return 2
            message = f"{type(exc).__name__}: {exc}"[:2000]
            send("error", message)
            finish("failed", error=message)
            return 1
        send("done", str(adapter), final)
        finish("succeeded", final=final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
