"""Wire models of the evals API (an OpenGLM extension: neither Zhipu nor OpenAI has it). No logic here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from .common import WireModel

MAX_SUITES = 8
MAX_MODELS = 4  # compared side by side: a run of more is several runs
MAX_PER_FAMILY = 100
SuiteName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Cursor = Annotated[str, StringConstraints(max_length=128)]

# -- requests -------------------------------------------------------------------


class EvalRunCreate(WireModel):
    suites: Annotated[list[SuiteName], Field(min_length=1, max_length=MAX_SUITES)]
    models: Annotated[list[ModelName], Field(min_length=1, max_length=MAX_MODELS)]
    per_family: Annotated[int, Field(ge=1, le=MAX_PER_FAMILY)] | None = None  # None: every task of each family
    split: Literal["train", "heldout"] | None = None  # None: both
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


# -- responses ------------------------------------------------------------------


class EvalFamily(BaseModel):
    name: str
    split: str
    tasks: int


class EvalSuite(BaseModel):
    name: str
    object: Literal["eval.suite"] = "eval.suite"
    description: str
    needs: list[str]
    tasks: int
    families: list[EvalFamily]


class EvalSuiteList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalSuite]


class EvalProgress(BaseModel):
    done: int
    failed: int
    total: int


class EvalError(BaseModel):
    code: str
    message: str


class EvalRunObject(BaseModel):
    """A run: what was asked, where it stands, and once it succeeded ``summaries`` (suite → model → headline
    numbers: score, heldout, train, latency_p50_s, families, …) and, from ``GET /evals/runs/{id}``, ``results``
    (suite → model → outcomes: task_id, family, split, passed, score, latency_s, tools, detail, error, metrics)."""

    id: str
    object: Literal["eval.run"] = "eval.run"
    status: Literal["queued", "running", "paused", "succeeded", "failed", "cancelled"]
    suites: list[str]
    models: list[str]
    per_family: int | None
    split: str | None
    seed: int
    progress: EvalProgress
    created_at: int
    started_at: int | None
    finished_at: int | None
    error: EvalError | None
    summaries: dict[str, dict[str, dict[str, Any]]] | None
    results: dict[str, dict[str, list[dict[str, Any]]]] | None = None


class EvalRunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalRunObject]
    has_more: bool
