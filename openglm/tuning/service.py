"""``FineTuningService``: what the fine-tuning API does. Routes parse and call one method here.

Creating a job checks everything before anything is written — the base model (a catalog ``llamacpp`` model whose
GGUF is on this server), the files (the caller's, purpose ``fine-tune``, every line valid, checked in the untrusted
worker pool), the hyperparameters (LoRA's included), the estimated cost (tokens × epochs × the base's
``fine_tuning`` price) against the available balance (1113), and the adapter's size (from the base's shapes and the
rank) against the account's storage quota (1210) — then submits one ``fine_tune`` job: a failure leaves nothing
behind.
Jobs and fine-tuned models are private: another account's id is not found.

Merging (an OpenGLM extension: neither Zhipu nor OpenAI has it) is asked for per fine-tuned model, not per job: it
is what an operator or owner does later, once a fine-tune turns out to carry most of the traffic, and it can be
redone in another quantization or undone. ``merge`` submits one ``fine_tune_merge`` job (``merge_job.py``) and
records it on the model; ``unmerge`` serves the adapter on the base again. ``MergedServing`` is what this service
needs from serving (the pool's merged engines), passed in by the app.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from ..accounts import reservations
from ..accounts.auth import Principal
from ..accounts.metering import insufficient_balance
from ..accounts.money import cost_of, format_yuan, to_nano
from ..catalog import Catalog, CatalogError, ModelSpec, resolve_source
from ..errors import ConflictError, InvalidFieldError, ModelNotFoundError, NotFoundError
from ..files.blobs import BlobStore
from ..files.store import FileStore
from ..jobs.runner import JobRunner
from ..jobs.store import JobEventRecord, JobNotFinished, JobRecord, JobStateError, new_job_id
from ..untrusted.pool import shared_pool
from .finetuned import AdapterTarget, FineTunedModels, FineTunedRecord, is_fine_tuned_name, merged_key
from .handler import JOB_PREFIX, KIND
from .lora_settings import LoRASettings, adapter_bytes, adapter_settings, resolve_lora
from .merge import Quantization
from .merge_job import JOB_PREFIX as MERGE_PREFIX
from .merge_job import KIND as MERGE_KIND
from .validation import check_training_file

Auto = Literal["auto"]
MAX_EPOCHS = 50
MAX_BATCH = 256
DEFAULT_EPOCHS = 3
DEFAULT_BATCH = 8
DEFAULT_BETA = 0.1
TRAINABLE_ENGINES = ("llamacpp",)


@dataclass(frozen=True)
class HyperparameterChoice:
    """As the client sent them: a number, "auto", or None (not given)."""

    n_epochs: int | Auto | None = None
    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    beta: float | Auto | None = None
    # OpenGLM's extension: the adapter's shape.
    lora_rank: int | Auto | None = None
    lora_alpha: float | Auto | None = None
    lora_dropout: float | Auto | None = None
    lora_target_modules: list[str] | Auto | None = None

    def over(self, other: HyperparameterChoice) -> HyperparameterChoice:
        """These values, with ``other``'s where these are not given."""
        mine, theirs = asdict(self), asdict(other)
        return HyperparameterChoice(**{k: mine[k] if mine[k] is not None else theirs[k] for k in mine})


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: HyperparameterChoice = HyperparameterChoice()
    method: Literal["supervised", "dpo"] = "supervised"
    method_hyperparameters: HyperparameterChoice = HyperparameterChoice()  # method.<type>.hyperparameters
    suffix: str | None = None
    request_id: str | None = None
    seed: int | None = None


class MergedServing(Protocol):
    """Serving's side of merged models (``serving/merged.py: MergedEngines``)."""

    capacity: int  # merged models a process loads at once; 0: merging is off

    def loaded(self, model: str) -> bool: ...

    def retire(self, model: str) -> None: ...


@dataclass(frozen=True)
class MergeStatus:
    record: FineTunedRecord
    job: JobRecord | None  # the model's latest merge job (None: never merged, or unmerged)
    loaded: bool  # this process serves the model from its merged file now


@dataclass(frozen=True)
class Continued:
    """The fine-tuned model a job continues and its adapter's shape, which the job keeps."""

    record: FineTunedRecord
    shape: LoRASettings


@dataclass(frozen=True)
class EventPage:
    events: list[JobEventRecord]
    has_more: bool


class FineTuningService:
    def __init__(
        self,
        catalog: Catalog,
        jobs: JobRunner,
        files: FileStore,
        blobs: BlobStore,
        models: FineTunedModels,
        serving: MergedServing | None = None,
        continues_adapters: bool = True,
    ):
        self.catalog = catalog
        # Whether this server's trainer can start from a fine-tuned model's adapter (the ``remote`` one cannot).
        self.continues_adapters = continues_adapters
        self.jobs = jobs
        self.files = files
        self.blobs = blobs
        self.models = models
        self.serving = serving

    # --- jobs ------------------------------------------------------------------------

    async def create(self, principal: Principal, request: JobRequest) -> JobRecord:
        """A job on a catalog model, or on one of the caller's fine-tuned models: then it trains that model's
        adapter further, on its base and in its shape, and makes a new fine-tuned model (the first one stays)."""
        parent = await self._continued(principal, request.model)
        spec = self.trainable_base(parent.record.base_model if parent else request.model)
        training = await self._checked_file(principal, request.training_file, request.method, "training_file")
        if request.validation_file is not None:
            await self._checked_file(principal, request.validation_file, request.method, "validation_file")
        hyperparameters = resolve_hyperparameters(
            request.method_hyperparameters.over(request.hyperparameters),
            request.method,
            training["lines"],
            adapter=parent.shape if parent else None,
        )
        hyperparameters["seed"] = request.seed if request.seed is not None else secrets.randbelow(2**31)
        price = to_nano(spec.effective_prices().fine_tuning)
        estimated = training["estimated_tokens"] * hyperparameters["n_epochs"]
        await self._check_balance(principal, cost_of(estimated, price), estimated)
        await self._check_storage(principal, spec, lora_of(hyperparameters))
        payload = {
            "model": spec.id,
            "requested_model": request.model,
            "training_file": request.training_file,
            "validation_file": request.validation_file,
            "method": request.method,
            "hyperparameters": hyperparameters,
            "suffix": request.suffix,
            "request_id": request.request_id,
            "key_id": principal.key_id,
            "owned_by": principal.account_id,
            "price_per_1k": price,
            "lines": training["lines"],
            "estimated_tokens": estimated,
            "continues": {"model": parent.record.id, "adapter_blob": parent.record.adapter_blob} if parent else None,
        }
        return await self.jobs.submit(KIND, payload, account_id=principal.account_id, prefix=JOB_PREFIX)

    async def _continued(self, principal: Principal, name: str) -> Continued | None:
        """The caller's fine-tuned model a job continues (None: ``name`` is not a fine-tuned model's), or a 4xx:
        another account's is not found, this server's trainer cannot start from an adapter, the file is unreadable."""
        if not is_fine_tuned_name(name):
            return None
        record = await self.models.get(principal.account_id, name)
        if not self.continues_adapters:
            raise InvalidFieldError(
                f"model: this server's trainer cannot start from a fine-tuned model's adapter; fine-tune "
                f"{record.base_model!r}, the base of {name!r}, instead"
            )
        try:
            shape = await asyncio.to_thread(adapter_settings, self.models.blob_root / record.adapter_blob)
        except (OSError, ValueError) as exc:
            raise InvalidFieldError(f"model {name!r}: its adapter cannot be trained further here ({exc})") from None
        return Continued(record, shape)

    def continuable(self, record: FineTunedRecord) -> bool:
        """Whether a job can train this fine-tuned model further here (the web app's base picker)."""
        return self.continues_adapters and self.fine_tunable(record.base_model)

    def trainable_base(self, name: str) -> ModelSpec:
        """The catalog entry a job trains on, or a 4xx saying why this one cannot be."""
        if is_fine_tuned_name(name):
            raise InvalidFieldError(f"model: {name!r} is a fine-tuned model, not a base model of the catalog")
        try:
            spec = self.catalog.lookup(name)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"模型不存在 / model {name!r} does not exist; models that can be fine-tuned here: "
                + (", ".join(self.trainable_names()) or "none")
            ) from None
        if spec.engine not in TRAINABLE_ENGINES:
            raise InvalidFieldError(
                f"model {name!r} is served by the {spec.engine} engine; fine-tuning needs a model this server "
                f"runs itself (the llamacpp engine, from its GGUF file). Fine-tunable here: "
                + (", ".join(self.trainable_names()) or "none")
            )
        try:
            path = Path(resolve_source(spec.source))
        except CatalogError as exc:
            raise InvalidFieldError(f"model {name!r}: its weights are not on this server ({exc})") from None
        if not (path.is_dir() or (path.is_file() and path.suffix == ".gguf")):
            raise InvalidFieldError(
                f"model {name!r}: the trainer loads a GGUF file or a Hugging Face directory, and {path.name} is "
                "neither on this server"
            )
        return spec

    def fine_tunable(self, name: str) -> bool:
        """Whether a job can train on this model here (``trainable_base`` says why not)."""
        try:
            self.trainable_base(name)
        except (InvalidFieldError, ModelNotFoundError):
            return False
        return True

    def trainable_names(self) -> list[str]:
        return sorted({spec.id for spec in self.catalog.specs if spec.engine in TRAINABLE_ENGINES})

    async def _checked_file(self, principal: Principal, file_id: str, method: str, field: str) -> dict[str, int]:
        try:
            record, data = await self.files.content(principal.account_id, file_id)
        except NotFoundError:
            raise InvalidFieldError(f"{field}: file {file_id!r} does not exist") from None
        if record.purpose != "fine-tune":
            raise InvalidFieldError(
                f"{field}: file {file_id!r} was uploaded with purpose {record.purpose!r}; training files are "
                "uploaded with purpose fine-tune"
            )
        summary: dict[str, int] = await shared_pool().run(
            check_training_file, data, method, field, what=f"the {field.replace('_', ' ')}"
        )
        return summary

    async def _check_balance(self, principal: Principal, cost: int, tokens: int) -> None:
        """The estimated cost must be available now (a check, not a reservation: the job is billed as it runs)."""
        if principal.key_id is None or cost <= 0:  # authentication off, or a free base
            return
        standing = await reservations.standing(self.files.db, principal.account_id)
        if standing.available < cost:
            refusal = insufficient_balance(standing)
            refusal.message += (
                f"; this job is estimated at {tokens} trained tokens (lines × epochs), {format_yuan(cost)} CNY"
            )
            raise refusal

    async def _check_storage(self, principal: Principal, spec: ModelSpec, lora: LoRASettings) -> None:
        """The adapter this job makes must fit in the account's storage now (1210 naming its size): a check, not a
        reservation; the model's row charges it when the job ends, and a job whose adapter no longer fits then
        fails saying so."""
        size = await asyncio.to_thread(adapter_bytes, resolve_source(spec.source), lora)
        if size is not None:
            await self.files.quota.check(principal.account_id, size, "the adapter this job would make")

    async def list_jobs(self, principal: Principal, *, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        records = await self.jobs.store.list_jobs(
            account_id=principal.account_id, kinds=[KIND], limit=limit + 1, after=after
        )
        return records[:limit], len(records) > limit

    async def get(self, principal: Principal, job_id: str) -> JobRecord:
        record = await self.jobs.store.get(job_id, account_id=principal.account_id)
        if record.kind != KIND:
            raise NotFoundError(f"no fine-tuning job {job_id!r}")
        return record

    async def events(self, principal: Principal, job_id: str, *, after: str | None, limit: int) -> EventPage:
        """In the order they happened; ``after``: an event id from an earlier page (polling for new ones)."""
        record = await self.get(principal, job_id)
        events = await self.jobs.store.events(record.id, after=event_seq(record.id, after), limit=limit + 1)
        return EventPage(events[:limit], len(events) > limit)

    async def checkpoints(
        self, principal: Principal, job_id: str, *, after: str | None, limit: int
    ) -> tuple[JobRecord, EventPage]:
        """The job and the checkpoints its trainer saved (events of kind checkpoint), in order."""
        record = await self.get(principal, job_id)
        found: list[JobEventRecord] = []
        seq = event_seq(record.id, after)
        while len(found) <= limit:
            events = await self.jobs.store.events(record.id, after=seq, limit=500)
            if not events:
                break
            seq = events[-1].seq
            found += [e for e in events if (e.metrics or {}).get("kind") == "checkpoint"]
        return record, EventPage(found[:limit], len(found) > limit)

    async def cancel(self, principal: Principal, job_id: str) -> JobRecord:
        await self.get(principal, job_id)
        return await self.jobs.cancel(job_id, account_id=principal.account_id)

    async def pause(self, principal: Principal, job_id: str) -> JobRecord:
        """OpenAI's pause: training stops at its next step, its checkpoint kept (status ``paused``); a finished job
        cannot be paused (1215)."""
        await self.get(principal, job_id)
        try:
            return await self.jobs.pause(job_id, account_id=principal.account_id)
        except JobStateError as exc:
            raise ConflictError(str(exc)) from None

    async def resume(self, principal: Principal, job_id: str) -> JobRecord:
        """OpenAI's resume: a paused job is queued again and trains on from its checkpoint (1215 for one that is not
        paused). Tokens trained again after the checkpoint are not billed again (``billing.py``)."""
        await self.get(principal, job_id)
        try:
            return await self.jobs.resume(job_id, account_id=principal.account_id)
        except JobStateError as exc:
            raise ConflictError(str(exc)) from None

    async def delete(self, principal: Principal, job_id: str) -> JobRecord:
        """A finished job is removed with its events (its model and result files stay); an unfinished one is
        refused (1215): cancel it first."""
        await self.get(principal, job_id)
        try:
            return await self.jobs.store.delete(job_id, account_id=principal.account_id)
        except JobNotFinished as exc:
            raise ConflictError(str(exc)) from None

    # --- fine-tuned models -------------------------------------------------------------

    async def models_of(self, account_id: str) -> list[FineTunedRecord]:
        return await self.models.list(account_id)

    async def model(self, account_id: str, name: str) -> FineTunedRecord:
        return await self.models.get(account_id, name)

    async def resolve(self, account_id: str, name: str) -> AdapterTarget:
        return await self.models.resolve(account_id, name)

    async def delete_model(self, principal: Principal, name: str) -> FineTunedRecord:
        record = await self.models.delete(principal.account_id, name)
        await self._drop_merge(record)
        await self.blobs.delete(record.adapter_blob)
        return record

    # --- merged models (an OpenGLM extension) ------------------------------------------------------------------

    async def merge(self, principal: Principal, name: str, quantization: Quantization) -> MergeStatus:
        """Queue a merge of the model's adapter into its base; 1215 while one is queued or running."""
        record = await self.models.get(principal.account_id, name)
        if self.serving is None or self.serving.capacity <= 0:
            raise InvalidFieldError(
                "merging fine-tuned models is off on this server (OPENGLM_FINE_TUNING_MERGED_MODELS is 0)"
            )
        spec = self.trainable_base(record.base_model)
        if not Path(resolve_source(spec.source)).is_file():
            raise InvalidFieldError(f"model {name!r}: its base is not a GGUF file on this server; it cannot be merged")
        current = await self._merge_job(record)
        if current is not None and not current.finished:
            raise ConflictError(
                f"model {name!r} is being merged already (job {current.id}, {current.status}); wait for it, or "
                "unmerge the model to cancel it"
            )
        job_id = new_job_id(MERGE_PREFIX)
        # The model names the job before the job exists: its worker checks that it is still the model's latest.
        await self.models.merging(principal.account_id, name, job_id)
        payload = {"model": name, "quantization": quantization, "base_model": spec.id}
        job = await self.jobs.store.submit(
            MERGE_KIND, payload, account_id=principal.account_id, prefix=MERGE_PREFIX, job_id=job_id
        )
        self.jobs.wake()
        return MergeStatus(replace(record, merge_job_id=job_id), job, self._loaded(name))

    async def merge_status(self, principal: Principal, name: str) -> MergeStatus:
        record = await self.models.get(principal.account_id, name)
        return MergeStatus(record, await self._merge_job(record), self._loaded(name))

    async def unmerge(self, principal: Principal, name: str) -> MergeStatus:
        """Serve the model as its adapter on the base again: a merge under way is cancelled, the merged file
        removed, this process's merged engine retired."""
        record = await self.models.unmerge(principal.account_id, name)
        await self._drop_merge(record)
        after = replace(record, merge_job_id=None, merged_blob=None, merged_type=None)
        return MergeStatus(after, None, False)

    async def _drop_merge(self, record: FineTunedRecord) -> None:
        job = await self._merge_job(record)
        if job is not None and not job.finished:
            await self.jobs.cancel(job.id, account_id=record.account_id)
        # The file served now, and the latest job's (a job stopped between storing its file and recording it leaves
        # one that no row names).
        latest = None if record.merge_job_id is None else merged_key(record.merge_job_id)
        for key in {k for k in (record.merged_blob, latest) if k is not None}:
            await self.blobs.delete(key)
        if self.serving is not None:
            self.serving.retire(record.id)

    async def _merge_job(self, record: FineTunedRecord) -> JobRecord | None:
        if record.merge_job_id is None:
            return None
        try:
            return await self.jobs.store.get(record.merge_job_id, account_id=record.account_id)
        except NotFoundError:  # named a moment before it is submitted
            return None

    def _loaded(self, name: str) -> bool:
        return self.serving is not None and self.serving.loaded(name)


def lora_of(hyperparameters: dict[str, Any]) -> LoRASettings:
    """A job's LoRA settings from its resolved hyperparameters (a job made before they were settable: defaults)."""
    defaults = LoRASettings()
    return LoRASettings(
        rank=int(hyperparameters.get("lora_rank", defaults.rank)),
        alpha=float(hyperparameters.get("lora_alpha", defaults.alpha)),
        dropout=float(hyperparameters.get("lora_dropout", defaults.dropout)),
        targets=tuple(hyperparameters.get("lora_target_modules") or defaults.targets),
    )


def event_seq(job_id: str, event_id: str | None) -> int:
    """The sequence number in an event id (``event_id``'s inverse); 0 for None."""
    if event_id is None:
        return 0
    prefix = f"ftevent-{job_id.removeprefix(JOB_PREFIX + '-')}-"
    number = event_id.removeprefix(prefix)
    if number == event_id or not number.isdigit() or len(number) > 9:
        raise InvalidFieldError(f"after: {event_id!r} is not an event id of job {job_id}")
    return int(number)


def event_id(job_id: str, seq: int) -> str:
    return f"ftevent-{job_id.removeprefix(JOB_PREFIX + '-')}-{seq}"


def resolve_hyperparameters(
    choice: HyperparameterChoice, method: str, lines: int, adapter: LoRASettings | None = None
) -> dict[str, Any]:
    """Numbers for every "auto" or missing value, checked against the bounds. ``adapter``: the shape of the adapter
    a job continues, which its rank, alpha and targets are (a value that differs is refused)."""
    n_epochs = DEFAULT_EPOCHS if choice.n_epochs in (None, "auto") else choice.n_epochs
    batch_size = min(DEFAULT_BATCH, max(1, lines)) if choice.batch_size in (None, "auto") else choice.batch_size
    rate = 1.0 if choice.learning_rate_multiplier in (None, "auto") else choice.learning_rate_multiplier
    assert not isinstance(n_epochs, str) and not isinstance(batch_size, str) and not isinstance(rate, str)
    if not 1 <= n_epochs <= MAX_EPOCHS:
        raise InvalidFieldError(f'hyperparameters.n_epochs must be 1 to {MAX_EPOCHS} or "auto"')
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidFieldError(f'hyperparameters.batch_size must be 1 to {MAX_BATCH} or "auto"')
    if not 0 < rate <= 10:
        raise InvalidFieldError('hyperparameters.learning_rate_multiplier must be above 0 and at most 10, or "auto"')
    resolved: dict[str, Any] = {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": rate}
    lora = resolve_lora(choice.lora_rank, choice.lora_alpha, choice.lora_dropout, choice.lora_target_modules)
    if adapter is not None:
        lora = kept_shape(choice, lora, adapter)
    resolved.update(
        lora_rank=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        lora_target_modules=list(lora.targets),
    )
    if method == "dpo":
        beta = DEFAULT_BETA if choice.beta in (None, "auto") else choice.beta
        assert not isinstance(beta, str)
        if not 0 < beta <= 2:
            raise InvalidFieldError('hyperparameters.beta must be above 0 and at most 2, or "auto"')
        resolved["beta"] = beta
    elif choice.beta is not None:
        raise InvalidFieldError("hyperparameters.beta is a DPO hyperparameter; this is a supervised job")
    return resolved


def kept_shape(choice: HyperparameterChoice, asked: LoRASettings, adapter: LoRASettings) -> LoRASettings:
    """A continued job's LoRA settings: the adapter's rank, alpha and targets (a value the job set that differs is
    refused, naming the field), the job's own dropout."""
    given = {
        "lora_rank": (choice.lora_rank, asked.rank, adapter.rank),
        "lora_alpha": (choice.lora_alpha, asked.alpha, adapter.alpha),
        "lora_target_modules": (choice.lora_target_modules, asked.targets, adapter.targets),
    }
    for field, (value, wanted, kept) in given.items():
        # Alpha is read back from the GGUF's float32: 0.1 given is 0.1 kept.
        if isinstance(kept, float) and isinstance(wanted, float):
            same = math.isclose(wanted, kept, rel_tol=1e-6)
        else:
            same = wanted == kept
        if value not in (None, "auto") and not same:
            shown = ", ".join(kept) if isinstance(kept, tuple) else f"{kept:g}"
            raise InvalidFieldError(
                f"hyperparameters.{field}: the fine-tuned model this job continues has {shown}, and a continued "
                f'job keeps its adapter\'s shape (leave {field} out, or "auto")'
            )
    return replace(adapter, dropout=asked.dropout)
