"""Zhipu's async calls, on the job system: ``POST /async/chat/completions`` and ``/async/images/generations``
queue the request as a job of the ``async_call`` kind and answer with its id at once; a server's slots of that
kind run it through the run service, as the caller, and keep the answer as the job's result;
``GET /async-result/{id}`` reads it.

    submit: the key's limits (one request) and the balance now, as a sync call's admission → job (request, key)
    run:    the request through ``RunService`` as a deferred principal (held to the balance, no second slot of the
            limits), collected (an agent's stream folded: ``collect.py``) → the job's result
    read:   queued/running → PROCESSING, succeeded → SUCCESS with the answer, failed/cancelled → FAIL with the error

The job system makes it durable: a job outlives the server that queued it, and a replica that dies mid-call gives
it up to another after its lease (the interrupted attempt is billed for what its engine produced, as a sync call
whose client left is; the answer is billed once more when it completes). Only servers run the kind (its handler
needs their loaded models and run service; ``openglm jobs work`` processes do not register it).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from ..accounts.auth import Principal
from ..config import Settings
from ..errors import NotFoundError, OpenGLMError
from ..jobs.context import JobContext, JobFailed
from ..jobs.kinds import job_kinds, own_slots
from ..jobs.runner import JobRunner
from ..jobs.store import JobRecord, Phase, phase
from ..protocol.async_results import AsyncResult, AsyncTask, TaskStatus
from ..protocol.chat import ChatCompletionRequest
from ..protocol.images import ImageGenerationRequest
from ..store.db import Database
from .collect import collect
from .service import RunService

KIND = "async_call"
JOB_PREFIX = "task"
ATTEMPTS = 3  # a call is tried again after its replica died, up to this many times in all
STATUS: dict[Phase, TaskStatus] = {"pending": "PROCESSING", "succeeded": "SUCCESS", "failed": "FAIL"}


class AsyncCalls:
    def __init__(self, jobs: JobRunner, runs: RunService, db: Database):
        self.jobs = jobs
        self.runs = runs
        self.db = db
        _services[id(db)] = runs

    def close(self) -> None:
        _services.pop(id(self.db), None)

    async def chat(self, principal: Principal, body: ChatCompletionRequest, base_url: str) -> AsyncTask:
        """An async chat call on a model, an All Tools agent or a GLM: checked and admitted now (an unknown model is
        1211 here, not a failed task), run by the job system."""
        spec = await self.runs.targets.priced(principal.account_id, body.model, body.agent_model)
        await self.runs.metering.check_submission(principal, spec, "chat.completions")
        request = body.model_dump(mode="json", exclude_none=True, exclude={"stream", "stream_options"})
        record = await self._submit(principal, "chat", request, base_url)
        request_id = _request_id(body.request_id, record)
        return AsyncTask(id=record.id, request_id=request_id, model=body.model, task_status="PROCESSING")

    async def images(self, principal: Principal, body: ImageGenerationRequest, base_url: str) -> AsyncTask:
        spec = self.runs.images.resolve(body.model)
        await self.runs.metering.check_submission(principal, spec, "images.generations")
        record = await self._submit(principal, "images", body.model_dump(mode="json", exclude_none=True), base_url)
        request_id = _request_id(body.request_id, record)
        return AsyncTask(id=record.id, request_id=request_id, model=spec.id, task_status="PROCESSING")

    async def result(self, principal: Principal, task_id: str) -> AsyncResult:
        """The task as its account sees it; another account's (or another kind of job's) id is not found."""
        try:
            record = await self.jobs.store.get(task_id, account_id=principal.account_id)
        except NotFoundError:
            record = None
        if record is None or record.kind != KIND:
            raise NotFoundError(f"no async task {task_id!r}")
        return result_of(record)

    async def _submit(self, principal: Principal, endpoint: str, request: dict[str, Any], base_url: str) -> JobRecord:
        payload = {
            "endpoint": endpoint,
            "request": request,
            "key_id": principal.key_id,
            "user_id": principal.user_id,
            "base_url": base_url,
        }
        return await self.jobs.submit(
            KIND, payload, account_id=principal.account_id, max_attempts=ATTEMPTS, prefix=JOB_PREFIX
        )


def _request_id(given: object, record: JobRecord) -> str:
    return str(given) if given is not None else record.id


def result_of(record: JobRecord) -> AsyncResult:
    status = STATUS[phase(record.status)]
    request = record.payload.get("request", {})
    answer: dict[str, Any] = {
        "id": record.id,
        "request_id": _request_id(request.get("request_id"), record),
        "model": request.get("model"),
        "task_status": status,
        "created": int(record.created_at.timestamp()),
    }
    result = record.result or {}
    if status == "SUCCESS" and record.payload.get("endpoint") == "images":
        answer["image_result"] = answer["data"] = result.get("data")
    elif status == "SUCCESS":
        answer.update(choices=result.get("choices"), usage=result.get("usage"))
        answer["created"] = result.get("created", answer["created"])
    elif status == "FAIL":
        code = record.error_code or ("cancelled" if record.status == "cancelled" else "500")
        answer["error"] = {"code": code, "message": record.error_message or "the task did not finish"}
    return AsyncResult.model_validate(answer)


# -- the job kind -------------------------------------------------------------------------------------------------

# The run service of each database in this process (a server's); a process without one cannot run the kind.
_services: dict[int, RunService] = {}


@job_kinds.register(KIND)
async def run_async_call(ctx: JobContext) -> dict[str, Any] | None:
    runs = _services.get(id(ctx.store.db))
    if runs is None:  # retried later, when a server (which has one) may claim it
        raise RuntimeError("async calls run in a server process; this one has no run service")
    payload = ctx.payload
    assert ctx.account_id is not None
    try:
        # The key checked again (revoked since: the task fails), with its limits and lineage.
        principal = await runs.authenticator.deferred(
            ctx.account_id, payload.get("key_id"), "async", payload.get("user_id")
        )
        if payload["endpoint"] == "images":
            images = ImageGenerationRequest.model_validate(payload["request"])
            return await collect(await runs.draw(principal, images, payload["base_url"]))
        chat = ChatCompletionRequest.model_validate(payload["request"])
        answer = await runs.answer(principal, chat, payload["base_url"])
    except ValidationError as exc:  # a request stored by another version that this one no longer accepts
        raise JobFailed(f"the stored request is not valid here: {exc.errors()[0]['msg']}", code="1214") from None
    except OpenGLMError:
        raise  # failed with its code and message (1113 when the balance ran out meanwhile, ...)
    answer.setdefault("created", int(time.time()))
    return answer


@own_slots.register(KIND)
def async_slots(settings: Settings) -> int:
    """OPENGLM_ASYNC_WORKERS: async calls a server runs at once, besides its shared slots."""
    return settings.async_workers
