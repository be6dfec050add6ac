"""The trainer registry and the narrow interface between a fine-tuning job and whatever trains.

The job handler (``handler.py``) hands a trainer a ``TrainingTask`` — the base model's catalog entry (its GGUF or
directory, template and tool-call format, so training renders conversations the way serving does), the training
and validation lines as validated JSON objects, the resolved hyperparameters, a working directory, and where an
earlier attempt left off — and a ``TrainingReporter`` it calls as it goes. It gets back a ``TrainingOutcome``: the
adapter file (llama.cpp's LoRA GGUF) and the final metrics. Nothing else crosses: the trainer knows no HTTP, no
database, no billing; the handler bills, stores the adapter and makes the model from what the reporter saw.

    @trainers.register("name")
    def make(settings: Settings) -> Trainer: ...

Built in: ``local`` trains in torch on this machine (``train.py``, in a niced worker process of its own:
``local.py``); ``remote`` has an OpenAI-compatible fine-tuning API train it and downloads the adapter
(``remote.py``); ``command`` runs the same training code as ``local`` on a cluster through a templated submit
command (``command.py``, ``runner.py``). Others register the same way, in a module listed in ``OPENGLM_PLUGINS``;
``OPENGLM_FINE_TUNING_TRAINER`` chooses one. Each built-in's module is imported when a job trains with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol

from ..catalog import ModelSpec
from ..config import Settings
from ..registry import Registry
from .lora_settings import DEFAULT_ALPHA, DEFAULT_DROPOUT, DEFAULT_RANK, TARGETS

Method = Literal["supervised", "dpo"]


@dataclass(frozen=True)
class Hyperparameters:
    """Resolved (no "auto" left): what the job object shows and the trainer uses."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    beta: float | None = None  # DPO only
    seed: int = 0
    # The adapter's shape (``lora_settings.py``: the API's defaults and bounds).
    lora_rank: int = DEFAULT_RANK
    lora_alpha: float = DEFAULT_ALPHA
    lora_dropout: float = DEFAULT_DROPOUT
    lora_target_modules: tuple[str, ...] = tuple(TARGETS)

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Hyperparameters:
        """From their JSON (a job's payload, a job directory's ``job.json``); what a job made before LoRA's were
        settable lacks is the default, and what this version does not know is dropped."""
        values = {k: v for k, v in stored.items() if k in {f.name for f in fields(cls)}}
        if "lora_target_modules" in values:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingTask:
    job_id: str
    base: ModelSpec  # the catalog entry: ``source`` (resolved to a path), ``template``, ``tool_parser``
    base_path: str  # the base's weights, a GGUF file or a Hugging Face directory
    method: Method
    training: list[dict[str, Any]]  # validated lines (``validation.py``)
    validation: list[dict[str, Any]]
    hyperparameters: Hyperparameters
    workdir: Path  # the trainer's own: checkpoints, the adapter it writes
    resume: dict[str, Any] | None = None  # what the trainer saved with ``checkpoint`` on an earlier attempt
    threads: int = 1
    # The adapter GGUF of the fine-tuned model this job continues (its own copy under ``workdir``): training starts
    # from it, in its shape (``hyperparameters`` say the same), and DPO compares with it. None: a fresh adapter.
    continues: Path | None = None


@dataclass(frozen=True)
class Metrics:
    """One progress report, after ``step`` of ``total_steps`` optimizer steps."""

    step: int
    total_steps: int
    epoch: float
    trained_tokens: int  # the examples' tokens trained so far, across epochs (what is billed)
    loss: float | None = None
    eval_loss: float | None = None
    accuracy: float | None = None  # mean token accuracy of the training batch, if the trainer computes it
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    elapsed_seconds: float | None = None
    remaining_seconds: float | None = None


class TrainingReporter(Protocol):
    """What a trainer calls while it trains. ``progress`` and ``checkpoint`` raise ``JobCancelled`` once the job
    was cancelled (a trainer running in a thread or a process polls ``cancelled()`` between steps instead).
    Pausing: once ``pausing()`` is true the trainer should save a checkpoint at its next step and stop; ``progress``
    raises ``JobPaused`` (a ``JobCancelled``) after recording the step it reports, ``checkpoint`` after saving, so
    a trainer that never asks stops at its next report and goes on from its last checkpoint when resumed."""

    async def progress(self, metrics: Metrics) -> None: ...

    async def message(self, text: str) -> None: ...

    async def checkpoint(self, state: dict[str, Any], metrics: Metrics) -> None:
        """Save what a later attempt resumes from (``TrainingTask.resume``): a JSON object (paths under
        ``workdir``, the step); the handler also lists it as a checkpoint of the job."""
        ...

    def cancelled(self) -> bool: ...

    def pausing(self) -> bool: ...


@dataclass(frozen=True)
class TrainingOutcome:
    adapter: Path  # a llama.cpp LoRA adapter GGUF for the base
    metrics: Metrics  # the last report (steps, trained tokens, final losses)
    history: list[Metrics] = field(default_factory=list)  # every report, for the result files


class Trainer(Protocol):
    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome: ...


TrainerFactory = Callable[[Settings], Trainer]
trainers: Registry[TrainerFactory] = Registry("trainer")


class TrainerUnavailable(Exception):
    """The chosen trainer cannot run here (its code or a dependency is missing); the job fails saying so."""


def continues_adapters(name: str) -> bool:
    """Whether the named trainer can start a job from a fine-tuned model's adapter (``TrainingTask.continues``)."""
    try:
        factory = trainers.get(name)
    except KeyError:
        return False
    return bool(getattr(factory, "continues_adapters", False))


@trainers.register("local")
class LocalTrainer:
    """LoRA training in torch on this machine, in a niced worker process of its own (``local.py``): SFT with the
    loss on assistant tokens, DPO against the base with the adapter off, validation loss, checkpoints, a fixed
    seed, exported to llama.cpp's adapter format. Nothing heavy is imported until a job trains."""

    continues_adapters = True

    def __init__(self, settings: Settings):
        self.settings = settings

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        from .local import ProcessTrainer

        return await ProcessTrainer(self.settings).train(task, reporter)


@trainers.register("remote")
class RemoteFineTuningTrainer:
    """An OpenAI-compatible fine-tuning API trains (another OpenGLM, a provider); its adapter is served here."""

    # The remote knows only its own models: an adapter made here cannot be its starting point.
    continues_adapters = False

    def __init__(self, settings: Settings):
        self.settings = settings

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        if task.continues is not None:  # the service refuses such a job; one queued under another trainer fails
            raise TrainerUnavailable("the remote trainer cannot start from a fine-tuned model's adapter")
        from .remote import RemoteTrainer

        return await RemoteTrainer(self.settings).train(task, reporter)


@trainers.register("command")
class CommandTrainer:
    """A cluster (Slurm, Kubernetes, anything with a command that waits) runs ``python -m openglm.tuning.runner``
    on a job directory this server writes on a shared filesystem."""

    continues_adapters = True

    def __init__(self, settings: Settings):
        self.settings = settings

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        from .command import SubmittedTrainer

        return await SubmittedTrainer(self.settings).train(task, reporter)
