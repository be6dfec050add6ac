"""Fine-tuning jobs, events and checkpoints as wire objects (``protocol/fine_tuning.py``), from the job system's
records."""

from __future__ import annotations

from typing import Any

from ..jobs.store import JobEventRecord, JobRecord
from ..protocol.fine_tuning import (
    CheckpointMetrics,
    FineTunedModelDeleted,
    FineTunedModelMerge,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobObject,
    JobError,
    JobHyperparameters,
    MethodHyperparameters,
    MethodOut,
)
from ..tuning.finetuned import FineTunedRecord
from ..tuning.service import MergeStatus, event_id

LEVELS = {"info": "info", "warning": "warn", "error": "error"}


def job_object(job: JobRecord) -> FineTuningJobObject:
    payload, result, progress = job.payload, job.result or {}, job.progress or {}
    hp = payload.get("hyperparameters", {})
    hyperparameters = JobHyperparameters(
        n_epochs=hp.get("n_epochs", 0),
        batch_size=hp.get("batch_size", 0),
        learning_rate_multiplier=hp.get("learning_rate_multiplier", 0.0),
        beta=hp.get("beta"),
        lora_rank=hp.get("lora_rank"),
        lora_alpha=hp.get("lora_alpha"),
        lora_dropout=hp.get("lora_dropout"),
        lora_target_modules=hp.get("lora_target_modules"),
    )
    method_type = payload.get("method", "supervised")
    settings = MethodHyperparameters(hyperparameters=hyperparameters)
    method = MethodOut(type=method_type, **{method_type: settings})
    trained = result.get("trained_tokens", progress.get("trained_tokens"))
    error = None
    if job.status == "failed":
        error = JobError(code=job.error_code or "job_failed", message=job.error_message or "the job failed")
    return FineTuningJobObject(
        id=job.id,
        created_at=_seconds(job.created_at),
        finished_at=_seconds(job.finished_at) if job.finished_at else None,
        model=payload.get("requested_model") or payload.get("model", ""),
        fine_tuned_model=result.get("fine_tuned_model"),
        organization_id=job.account_id or "",
        status=job.status,  # type: ignore[arg-type]  # the job system's statuses are a subset of the wire's
        training_file=payload.get("training_file", ""),
        validation_file=payload.get("validation_file"),
        result_files=list(result.get("result_files", [])),
        trained_tokens=trained,
        hyperparameters=hyperparameters,
        method=method,
        seed=hp.get("seed", 0),
        error=error,
        user_provided_suffix=payload.get("suffix"),
        request_id=payload.get("request_id"),
    )


def event_object(event: JobEventRecord) -> FineTuningJobEvent:
    metrics = event.metrics or {}
    is_metrics = metrics.get("kind") in ("metrics", "checkpoint")
    return FineTuningJobEvent(
        id=event_id(event.job_id, event.seq),
        created_at=_seconds(event.created_at),
        level=LEVELS.get(event.level, "info"),  # type: ignore[arg-type]
        message=event.message,
        type="metrics" if is_metrics else "message",
        data=metrics_data(metrics) if is_metrics else None,
    )


def metrics_data(metrics: dict[str, Any]) -> dict[str, Any]:
    """One object both SDKs read: Zhipu's Metric names and OpenAI's metrics names."""
    data = {
        # Zhipu
        "current_steps": metrics.get("step"),
        "total_steps": metrics.get("total_steps"),
        "epoch": metrics.get("epoch"),
        "loss": metrics.get("loss"),
        "eval_loss": metrics.get("eval_loss"),
        "acc": metrics.get("accuracy"),
        "learning_rate": metrics.get("learning_rate"),
        "trained_tokens": metrics.get("trained_tokens"),
        "elapsed_time": _clock(metrics.get("elapsed_seconds")),
        "remaining_time": _clock(metrics.get("remaining_seconds")),
        # OpenAI
        "step": metrics.get("step"),
        "train_loss": metrics.get("loss"),
        "valid_loss": metrics.get("eval_loss"),
        "train_mean_token_accuracy": metrics.get("accuracy"),
        "tokens_per_second": metrics.get("tokens_per_second"),
    }
    return {key: value for key, value in data.items() if value is not None}


def checkpoint_object(job: JobRecord, event: JobEventRecord) -> FineTuningJobCheckpoint:
    metrics = event.metrics or {}
    step = int(metrics.get("step", 0))
    name = (job.result or {}).get("fine_tuned_model") or job.id
    return FineTuningJobCheckpoint(
        id=event_id(event.job_id, event.seq),
        created_at=_seconds(event.created_at),
        fine_tuned_model_checkpoint=f"{name}:ckpt-step-{step}",
        fine_tuning_job_id=job.id,
        metrics=CheckpointMetrics(step=step, train_loss=metrics.get("loss"), valid_loss=metrics.get("eval_loss")),
        step_number=step,
    )


def _seconds(moment: Any) -> int:
    return int(moment.timestamp())


def _clock(seconds: Any) -> str | None:
    if seconds is None:
        return None
    total = max(0, round(float(seconds)))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def deleted_model_object(record: FineTunedRecord) -> FineTunedModelDeleted:
    """OpenAI's ``ModelDeleted`` and Zhipu's ``FineTunedModelsStatus`` for a removed fine-tuned model."""
    return FineTunedModelDeleted(id=record.id, request_id=record.id, model_name=record.id)


def merge_object(status: MergeStatus) -> FineTunedModelMerge:
    record, job = status.record, status.job
    result, payload = (job.result or {}, job.payload) if job is not None else ({}, {})
    error = None
    if job is not None and job.status == "failed":
        error = JobError(code=job.error_code or "job_failed", message=job.error_message or "the merge failed")
    return FineTunedModelMerge(
        model=record.id,
        status=job.status if job is not None else "none",  # type: ignore[arg-type]  # the job system's statuses
        job_id=job.id if job is not None else None,
        quantization=payload.get("quantization"),
        merged_type=record.merged_type,
        serving="merged" if record.merged_blob is not None else "adapter",
        loaded=status.loaded,
        size_bytes=result.get("size_bytes"),
        created_at=_seconds(job.created_at) if job is not None else None,
        finished_at=_seconds(job.finished_at) if job is not None and job.finished_at else None,
        error=error,
    )
