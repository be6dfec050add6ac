"""Wire models of Zhipu's async calls: ``POST /async/chat/completions`` and ``/async/images/generations`` answer
with a task; ``GET /async-result/{id}`` with its state and, once done, the answer a sync call gives. No logic
here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from .chat import Usage
from .images import ImageData

TaskStatus = Literal["PROCESSING", "SUCCESS", "FAIL"]


class AsyncTask(BaseModel):
    id: str
    request_id: str | None = None
    model: str | None = None
    task_status: TaskStatus


class AsyncError(BaseModel):
    code: str
    message: str


class AsyncResult(BaseModel):
    """A chat task's ``choices`` and ``usage`` as a sync answer has them; a picture task's ``image_result`` (Zhipu's
    spelling of an async media result) and ``data`` (the sync answer's); a failed task's ``error``."""

    id: str
    request_id: str | None = None
    model: str | None = None
    task_status: TaskStatus
    created: int | None = None
    choices: list[dict[str, Any]] | None = None
    usage: Usage | None = None
    image_result: list[ImageData] | None = None
    data: list[ImageData] | None = None
    error: AsyncError | None = None
