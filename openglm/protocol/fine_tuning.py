"""Wire models of the fine-tuning API, as the unmodified SDKs send and parse them: zhipuai 2.1.5
(``client.fine_tuning.jobs.*``, ``client.fine_tuning.models.delete``) and openai 3.x (``client.fine_tuning.jobs.*``,
``jobs.checkpoints.list``, ``models.delete``). One object serves both where their fields differ only in which
ones each reads. No logic here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from .common import RequestId, WireModel

Auto = Literal["auto"]
FileId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Suffix = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]
Cursor = Annotated[str, StringConstraints(max_length=128)]
ModuleNames = Annotated[list[Annotated[str, StringConstraints(max_length=40)]], Field(max_length=16)]

# -- requests -------------------------------------------------------------------


class HyperparametersIn(WireModel):
    """Each a number or "auto"; bounds beyond the type are the service's (it says which field and why)."""

    n_epochs: Auto | Annotated[int, Field(ge=1, le=1000)] | None = None
    batch_size: Auto | Annotated[int, Field(ge=1, le=100_000)] | None = None
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=1000)] | None = None
    beta: Auto | Annotated[float, Field(gt=0, le=1000)] | None = None  # DPO (OpenAI's method.dpo)
    # OpenGLM's extension (the SDKs' ``extra_body``, or inside ``hyperparameters``/``method``): the adapter's shape.
    lora_rank: Auto | int | None = None
    lora_alpha: Auto | float | None = None
    lora_dropout: Auto | float | None = None
    lora_target_modules: Auto | ModuleNames | None = None


class MethodSettings(WireModel):
    hyperparameters: HyperparametersIn | None = None


class MethodIn(WireModel):
    """OpenAI's ``method``: ``{"type": "supervised" | "dpo", "<type>": {"hyperparameters": {...}}}``."""

    type: Literal["supervised", "dpo"]
    supervised: MethodSettings | None = None
    dpo: MethodSettings | None = None


class FineTuningJobCreate(WireModel):
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    training_file: FileId
    validation_file: FileId | None = None
    hyperparameters: HyperparametersIn | None = None
    method: MethodIn | None = None
    suffix: Suffix | None = None
    request_id: RequestId | None = None  # Zhipu's
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


# -- responses ------------------------------------------------------------------


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobHyperparameters(BaseModel):
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    beta: float | None = None
    # OpenGLM's: the LoRA the job trains (both SDKs keep fields they do not declare).
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    lora_target_modules: list[str] | None = None


class MethodHyperparameters(BaseModel):
    hyperparameters: JobHyperparameters


class MethodOut(BaseModel):
    type: Literal["supervised", "dpo"]
    supervised: MethodHyperparameters | None = None
    dpo: MethodHyperparameters | None = None


# "paused": OpenAI's pause (the openai SDK's own Literal lacks it and keeps the value as it is).
JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]


class FineTuningJobObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: JobStatus
    training_file: str
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    hyperparameters: JobHyperparameters
    method: MethodOut
    seed: int
    error: JobError | None
    estimated_finish: int | None = None
    user_provided_suffix: str | None = None
    request_id: str | None = None  # Zhipu's
    metadata: dict[str, str] | None = None


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobObject]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    """OpenAI reads ``type`` and ``data`` (any object); Zhipu reads ``data`` as its Metric (current_steps,
    total_steps, epoch, loss, eval_loss, acc, learning_rate, elapsed_time, remaining_time, trained_tokens)."""

    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FineTunedModelDeleted(BaseModel):
    """OpenAI's ``ModelDeleted`` (id, object, deleted) and Zhipu's ``FineTunedModelsStatus`` (request_id,
    model_name, delete_status) in one object."""

    id: str
    object: Literal["model"] = "model"
    deleted: bool = True
    request_id: str
    model_name: str
    delete_status: Literal["deleting", "deleted"] = "deleted"


# -- merged models (an OpenGLM extension: neither SDK has it) ------------------------------------------------


class FineTunedModelMergeCreate(WireModel):
    """``auto``: the base's own types when they are 8-bit or finer, else Q8_0 (a 4-bit requantization loses a
    LoRA's small deltas); ``base``: requantized to the base's own types (Q4_1 for the embedded default); ``q8_0``:
    every matrix Q8_0; ``f16``: every matrix F16, nothing requantized."""

    quantization: Literal["auto", "base", "q8_0", "f16"] = "auto"


class FineTunedModelMerge(BaseModel):
    """A fine-tuned model's merge: its latest merge job and how the model is served."""

    object: Literal["fine_tuning.merge"] = "fine_tuning.merge"
    model: str
    # The latest merge job's status; "none": never merged, or unmerged (the adapter is applied on the base).
    status: Literal["none", "queued", "running", "succeeded", "failed", "cancelled"]
    job_id: str | None
    quantization: Literal["auto", "base", "q8_0", "f16"] | None  # as requested
    merged_type: str | None  # the merged file's type (Q4_1, Q8_0, F16, ...) once a merge succeeded
    serving: Literal["merged", "adapter"]  # what the model's requests run on (adapter: on the base's engine)
    loaded: bool  # this server process has the merged engine loaded now (it loads on the first request)
    size_bytes: int | None
    created_at: int | None
    finished_at: int | None
    error: JobError | None
