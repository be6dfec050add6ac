"""One training run — render, load, train, export — and the messages it reports, shared by every host that runs it.

    host (the job's trainer)                       the run (a process of its own: ``run``)
    local.py: a spawned, niced child ──▶ pipe ─┐   render the lines with the serving template (``render.py``)
    command.py: a scheduler's job ──▶ events.jsonl   → load the base from its GGUF (``train.py``)
         ▲                                     │   → ``Trainer.run``, checkpointing under ``workdir``
         └── Relay: messages → reporter calls ◀┘   → export the adapter to ``workdir/adapter.gguf`` (``export.py``)

The run sends tuples: ``("message", text)``, ``("progress", values)``, ``("checkpoint", state, values)``,
``("done", adapter path, final values)``, ``("paused",)`` or ``("error", text)`` — ``values`` being
``train.Progress``'s fields (JSON-ready: the command trainer writes them as JSON lines). Whatever carries them,
``Relay`` turns them into the ``TrainingReporter``'s calls, so the local and the cluster trainer bill, show and
checkpoint the same way. Torch is imported inside ``run`` only: the hosts' processes never load it.

Pausing: the host hands ``run`` a ``should_pause`` it can set (the local trainer's Event, the command trainer's
``pause`` file); between steps the run then saves a checkpoint of the steps so far (reported as ever), sends
``("paused",)`` and ends. ``Relay`` asks for it (its ``pause`` callback) once the reporter says the job is pausing,
or once a reporter call raised ``JobPaused`` (the step it reported is recorded first), and raises ``JobPaused``
when the run says it paused: the attempt ends paused and a resume goes on from that checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..jobs.context import JobFailed, JobPaused
from .trainers import Metrics, TrainingOutcome, TrainingReporter, TrainingTask

CHECKPOINT_DIR = "checkpoint"
ADAPTER_FILE = "adapter.gguf"
CONTINUES_FILE = "continues.gguf"  # the adapter a continued job starts from, copied into its workdir

Send = Callable[..., None]


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
    """The training process ended without a result (killed: out of memory, a signal, a lost node). Not
    ``JobFailed``: the job system retries it, from the last checkpoint, while attempts remain."""


class Relay:
    """The host's side of a run: each message becomes the reporter's call; ``done`` becomes the outcome (the
    adapter the run wrote in the task's ``workdir``), ``paused`` ends the attempt paused and ``error`` fails the
    job with the run's message. ``pause``: how the host asks its run to pause (None: a host that cannot, whose
    attempt ends at the reporter's first ``JobPaused``)."""

    def __init__(self, task: TrainingTask, reporter: TrainingReporter, pause: Callable[[], None] | None = None):
        self.task = task
        self.reporter = reporter
        self.pause = pause
        self.pausing = False  # the run was asked to pause
        self.adapter = task.workdir / ADAPTER_FILE
        self.started = time.monotonic()
        self.history: list[Metrics] = []
        self.outcome: TrainingOutcome | None = None

    def poll(self) -> None:
        """Between messages: ask the run to pause once the job is pausing."""
        if not self.pausing and self.pause is not None and self.reporter.pausing():
            self.request_pause()

    def request_pause(self) -> None:
        assert self.pause is not None
        self.pausing = True
        self.pause()

    async def handle(self, message: Sequence[Any]) -> TrainingOutcome | None:
        kind, elapsed = message[0], time.monotonic() - self.started
        try:
            if kind == "message":
                await self.reporter.message(str(message[1]))
            elif kind == "progress":
                metrics = metrics_of(message[1], elapsed)
                self.history.append(metrics)
                await self.reporter.progress(metrics)
            elif kind == "checkpoint":
                await self.reporter.checkpoint(dict(message[1]), metrics_of(message[2], elapsed))
        except JobPaused:  # recorded all the same; the run saves a checkpoint at its next step and says "paused"
            if self.pause is None:
                raise
            self.request_pause()
        if kind == "done":
            self.outcome = TrainingOutcome(self.adapter, metrics_of(message[2], elapsed), self.history)
        elif kind == "paused":
            raise JobPaused(f"job {self.task.job_id} was paused")
        elif kind == "error":
            raise JobFailed(f"training failed: {message[1]}", code="training_failed")
        return self.outcome


def metrics_of(values: dict[str, Any], elapsed: float) -> Metrics:
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


def limit_threads(threads: int) -> None:
    """Cap the math libraries' threads; before torch is imported (they read the environment when they load)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(max(1, threads))
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def run(
    task: TrainingTask,
    send: Send,
    should_stop: Callable[[], bool],
    should_pause: Callable[[], bool] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Render the lines with the serving template, load the base (and the adapter a continued job starts from),
    train (resuming from ``workdir``), export.
    ``should_stop`` ends the run between steps (``train.TrainingCancelled``); ``should_pause`` does too, after a
    checkpoint of the steps so far (``train.TrainingPaused``, which the host reports as ``("paused",)``)."""
    import torch
    from transformers.utils import logging as transformers_logging

    from .export import export_adapter, read_adapter
    from .lora import LoRAConfig
    from .lora_settings import adapter_settings
    from .render import Example, Preference, Renderer
    from .train import Hyperparameters, Progress, Trainer, compute_dtype, load_base_model

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
        # The job's adapter shape (``lora_settings.py``: the API's defaults, dropout off, and bounds).
        lora=LoRAConfig(
            rank=hp.lora_rank, alpha=hp.lora_alpha, dropout=hp.lora_dropout, targets=tuple(hp.lora_target_modules)
        ),
        log_every=plan.log_every,
        checkpoint_every=plan.checkpoint_every,
    )
    checkpoints = task.workdir / CHECKPOINT_DIR
    # Loaded straight in the compute dtype: a bf16 run never holds an fp32 copy of the base.
    model = load_base_model(
        task.base_path, threads=max(1, task.threads), dtype=compute_dtype(hyperparameters.precision)
    )
    initial = None
    if task.continues is not None:
        shape = adapter_settings(task.continues)
        lora = hyperparameters.lora
        if (shape.rank, shape.alpha, shape.targets) != (lora.rank, lora.alpha, lora.targets):
            raise ValueError(
                f"the adapter this job continues has rank {shape.rank}, alpha {shape.alpha:g} and targets "
                f"{', '.join(shape.targets)}; the job asks for rank {lora.rank}, alpha {lora.alpha:g} and "
                f"{', '.join(lora.targets)}"
            )
        initial = read_adapter(model, task.continues, architecture=architecture)

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
        initial_adapter=initial,
    )
    send(
        "message",
        f"loaded {task.base.id} for training in {time.monotonic() - began:.1f} s"
        + (f", starting from the adapter it continues ({len(initial) // 2} matrices)" if initial else "")
        + f": {len(train_items)} "
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
