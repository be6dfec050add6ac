"""The ``fine_tune`` job kind: runs the configured trainer on a job's validated files, bills trained tokens as
they are reported, and on success stores the adapter, writes the result files and makes the fine-tuned model.

    training → adapter blob + fine_tuned_models row (its bytes in the storage quota) → result files (metrics CSV,
    loss curve PNG, a copy of the adapter) → succeeded

Storage: the model's adapter is counted once, with the model's row (``finetuned.py``). The published copy of it
(``<job>-adapter.gguf``, for ``/files/{id}/content``) is a file of its own, a second blob, and counts as every file
does: deleting it gives its bytes back and the model is still served; deleting the model leaves the file. The model
comes first: a result file that does not fit is skipped with a warning event, and the check when the job is created
covers the model's adapter only.

After the model is made the handler checkpoints ``stage: done`` with its result, so an attempt that runs again
(its worker died before the outcome was written) returns that result instead of training again; the model row is
unique per job besides. A trainer's own checkpoints are kept as ``stage: training`` and handed back to it on the
next attempt (``TrainingTask.resume``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..catalog import Catalog, CatalogError, ModelSpec, resolve_source
from ..config import Settings
from ..errors import ModelNotFoundError, NotFoundError, OpenGLMError, StorageQuotaError
from ..files.blobs import LocalBlobStore
from ..files.store import FileStore
from ..jobs.context import JobContext, JobFailed
from ..jobs.kinds import job_kinds
from ..jobs.store import JobStore
from ..store.types import utcnow
from .billing import Billing, charge
from .finetuned import FineTunedModels, FineTunedRecord, adapter_key
from .pipeline import CONTINUES_FILE
from .results import loss_curve_png, metrics_csv
from .trainers import Hyperparameters, Metrics, TrainerUnavailable, TrainingOutcome, TrainingTask, trainers

log = logging.getLogger(__name__)
KIND = "fine_tune"
JOB_PREFIX = "ftjob"
ADAPTER_RESULT = "adapter.gguf"  # the published adapter's name, after the job id


def metrics_json(metrics: Metrics, kind: str = "metrics") -> dict[str, Any]:
    """An event's metrics as stored (``job_events.metrics``): ``kind`` (metrics | checkpoint) and the fields."""
    return {"kind": kind, **{k: v for k, v in asdict(metrics).items() if v is not None}}


def metrics_of(data: dict[str, Any]) -> Metrics | None:
    """The metrics an event stored, or None for an event without them."""
    if data.get("kind") not in ("metrics", "checkpoint"):
        return None
    names = {f.name for f in fields(Metrics)}
    try:
        return Metrics(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


@dataclass
class Workshop:
    """What the handler works with, opened from the process's settings on the job system's database."""

    settings: Settings
    catalog: Catalog
    files: FileStore
    blobs: LocalBlobStore
    models: FineTunedModels

    @classmethod
    def open(cls, settings: Settings, store: JobStore) -> Workshop:
        blobs = LocalBlobStore(settings.data_dir / "blobs")
        files = FileStore(store.db, blobs, quota_bytes=settings.storage_quota_bytes())
        return cls(
            settings,
            Catalog.from_file(settings.models_file),
            files,
            blobs,
            FineTunedModels(store.db, blobs.root, files.quota),
        )

    def base(self, name: str) -> tuple[ModelSpec, str]:
        try:
            spec = self.catalog.lookup(name)
            return spec, resolve_source(spec.source)
        except (ModelNotFoundError, CatalogError) as exc:
            raise JobFailed(f"the base model is no longer available: {exc}", code="base_model_unavailable") from None

    async def lines(self, account_id: str, file_id: str, what: str) -> list[dict[str, Any]]:
        try:
            _, data = await self.files.content(account_id, file_id)
        except NotFoundError:
            raise JobFailed(f"the {what} {file_id} was deleted before training", code="file_deleted") from None
        return await asyncio.to_thread(_parse_lines, data)


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    # Validated when the job was created (the same bytes: file contents never change).
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


class JobReporter:
    """The ``TrainingReporter`` a trainer is given: progress billed and recorded as events, checkpoints saved."""

    def __init__(self, ctx: JobContext, billing: Billing):
        self.ctx = ctx
        self.billing = billing

    async def progress(self, metrics: Metrics) -> None:
        await self.settle(metrics)
        losses = ", ".join(
            f"{name} {value:.4f}"
            for name, value in (("training loss", metrics.loss), ("validation loss", metrics.eval_loss))
            if value is not None
        )
        text = f"step {metrics.step}/{metrics.total_steps}" + (f": {losses}" if losses else "")
        await self.ctx.event(text, metrics=metrics_json(metrics))

    async def message(self, text: str) -> None:
        await self.ctx.event(text)

    async def settle(self, metrics: Metrics) -> None:
        """Bill the tokens trained so far (beyond what was billed) and show the progress, in one write."""
        shown = {
            "step": metrics.step,
            "total_steps": metrics.total_steps,
            "epoch": metrics.epoch,
            "trained_tokens": metrics.trained_tokens,
        }
        await charge(self.ctx.store, self.ctx.lease, self.billing, metrics.trained_tokens, shown)

    async def checkpoint(self, state: dict[str, Any], metrics: Metrics) -> None:
        listed = metrics.step > 0  # before the first step (a remote job's id, say) there are no weights to list
        await self.ctx.checkpoint(
            {"stage": "training", "trainer": state},
            message=f"checkpoint at step {metrics.step}" if listed else None,
            metrics=metrics_json(metrics, "checkpoint") if listed else None,
        )

    def cancelled(self) -> bool:
        return self.ctx.is_cancelled()

    def pausing(self) -> bool:
        return self.ctx.is_paused()


@job_kinds.register(KIND)
async def fine_tune(ctx: JobContext) -> dict[str, Any]:
    resume = ctx.resume or {}
    if resume.get("stage") == "done":  # made the model, then its worker died before the outcome was written
        return dict(resume["result"])
    settings = ctx.settings or Settings()
    shop = Workshop.open(settings, ctx.store)
    payload = ctx.payload
    account_id = ctx.account_id
    if account_id is None:
        raise JobFailed("a fine-tuning job belongs to an account", code="invalid_job")
    spec, base_path = shop.base(payload["model"])
    training = await shop.lines(account_id, payload["training_file"], "training file")
    validation_file = payload.get("validation_file")
    validation = await shop.lines(account_id, validation_file, "validation file") if validation_file else []
    try:
        trainer = trainers.get(settings.fine_tuning_trainer)(settings)
    except KeyError as exc:
        raise JobFailed(str(exc.args[0]), code="trainer_unavailable") from None
    workdir = settings.fine_tuning_root() / ctx.job_id
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    continues = await _continued_adapter(shop, payload, account_id, workdir)
    task = TrainingTask(
        job_id=ctx.job_id,
        base=spec,
        base_path=base_path,
        method=payload["method"],
        training=training,
        validation=validation,
        hyperparameters=Hyperparameters.of(payload["hyperparameters"]),
        workdir=workdir,
        resume=resume.get("trainer") if resume.get("stage") == "training" else None,
        threads=settings.fine_tuning_threads,
        continues=continues,
    )
    started = ctx.lease.job.started_at or utcnow()
    billing = Billing(account_id, payload.get("key_id"), spec.id, int(payload["price_per_1k"]), started)
    reporter = JobReporter(ctx, billing)
    await ctx.event(
        f"training {spec.id} ({payload['method']}) on {len(training)} examples"
        + (f" and {len(validation)} validation examples" if validation else "")
        + f" with the {settings.fine_tuning_trainer} trainer"
        + (f", resuming (attempt {ctx.attempt})" if task.resume else "")
    )
    try:
        outcome = await trainer.train(task, reporter)
    except TrainerUnavailable as exc:
        raise JobFailed(str(exc), code="trainer_unavailable") from None
    await reporter.settle(outcome.metrics)  # the final count is billed, whatever the trainer reported last
    result = await finish(ctx, shop, payload, account_id, spec, outcome)
    # The adapter is a blob now and the result is checkpointed: the trainer's checkpoints are not needed again.
    await asyncio.to_thread(shutil.rmtree, workdir, True)
    return result


async def _continued_adapter(shop: Workshop, payload: dict[str, Any], account_id: str, workdir: Path) -> Path | None:
    """The adapter of the fine-tuned model the job continues, copied into its workdir by its first attempt: the job's
    own copy from then on, whatever becomes of the model. A model deleted before that fails the job saying so."""
    parent = payload.get("continues")
    if parent is None:
        return None
    path = workdir / CONTINUES_FILE
    if not path.exists():
        deleted = JobFailed(
            f"the fine-tuned model {parent['model']} this job continues was deleted before the job started",
            code="model_not_found",
        )
        try:
            record = await shop.models.get(account_id, str(parent["model"]))
        except ModelNotFoundError:
            raise deleted from None
        partial = path.with_suffix(".partial")
        try:
            await asyncio.to_thread(shutil.copyfile, shop.models.blob_root / record.adapter_blob, partial)
        except FileNotFoundError:  # deleted between the two reads
            raise deleted from None
        partial.replace(path)
    return path


async def finish(
    ctx: JobContext,
    shop: Workshop,
    payload: dict[str, Any],
    account_id: str,
    spec: ModelSpec,
    outcome: TrainingOutcome,
) -> dict[str, Any]:
    data = await asyncio.to_thread(Path(outcome.adapter).read_bytes)
    model = await _keep_model(ctx, shop, payload, account_id, spec, data)
    history = await _history(ctx)
    result_files = await _result_files(ctx, shop, account_id, history, data)
    result = {
        "fine_tuned_model": model.id,
        "trained_tokens": outcome.metrics.trained_tokens,
        "steps": outcome.metrics.step,
        "result_files": result_files,
    }
    await ctx.checkpoint({"stage": "done", "result": result})
    await ctx.event(f"the fine-tuned model {model.id} is ready")
    return result


async def _keep_model(
    ctx: JobContext,
    shop: Workshop,
    payload: dict[str, Any],
    account_id: str,
    spec: ModelSpec,
    data: bytes,
) -> FineTunedRecord:
    """The adapter (``data``) as a blob and the model's row, its bytes charged to the account's storage quota with
    the row. When they do not fit, the job fails saying so and nothing is kept (the trained tokens stay billed:
    they were trained). Before the result files, which give way to it (they are skipped when the storage is full,
    the published copy of the adapter included)."""
    existing = await shop.models.of_job(ctx.job_id)
    if existing is not None:  # an attempt that ran again after making it
        return existing
    key = adapter_key(ctx.job_id)
    await shop.blobs.put(key, data)
    try:
        return await shop.models.create(
            account_id=account_id,
            base_model=spec.id,
            job_id=ctx.job_id,
            label=payload.get("suffix") or account_id[:12],
            owned_by=payload.get("owned_by") or account_id,
            size=len(data),
        )
    except StorageQuotaError as exc:
        await shop.blobs.delete(key)
        raise JobFailed(f"the fine-tuned model cannot be kept: {exc.message}", code="storage_quota_exceeded") from None


async def _history(ctx: JobContext) -> list[Metrics]:
    """Every step's last report, across attempts (a resumed attempt reports some steps again)."""
    by_step: dict[int, Metrics] = {}
    after = 0
    while True:
        events = await ctx.store.events(ctx.job_id, after=after, limit=500)
        if not events:
            break
        after = events[-1].seq
        for event in events:
            metrics = metrics_of(event.metrics or {})
            if metrics is not None and (event.metrics or {}).get("kind") == "metrics":
                by_step[metrics.step] = metrics
    return [by_step[step] for step in sorted(by_step)]


async def _result_files(
    ctx: JobContext, shop: Workshop, account_id: str, history: list[Metrics], adapter: bytes
) -> list[str]:
    """The metrics CSV, the loss curve and the adapter itself as files of purpose ``fine-tune-results``: the
    adapter so that whoever owns the job can download it through ``/files/{id}/content`` — another OpenGLM whose
    ``remote`` trainer sent the job here, or a person serving it elsewhere. A file that cannot be kept (the
    account's storage is full) is reported as an event; the model is made all the same."""
    csv = metrics_csv(history)
    png = await asyncio.to_thread(loss_curve_png, history, f"{ctx.job_id} loss")
    made: list[str] = []
    for name, data, media_type in (
        (f"{ctx.job_id}-metrics.csv", csv, "text/csv"),
        (f"{ctx.job_id}-loss.png", png, "image/png"),
        (f"{ctx.job_id}-{ADAPTER_RESULT}", adapter, "application/octet-stream"),
    ):
        try:
            record = await shop.files.create(account_id, "fine-tune-results", name, data, media_type, by_platform=True)
        except OpenGLMError as exc:
            await ctx.event(f"result file {name} not kept: {exc.message}", level="warning")
            continue
        made.append(record.id)
    return made
