"""The fine-tuning API under both prefixes: jobs (create, list, retrieve, events, checkpoints, cancel, pause, resume,
delete) and fine-tuned models (delete). Parse, call ``FineTuningService``, answer."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.fine_tuning import (
    Cursor,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEventList,
    FineTuningJobList,
    HyperparametersIn,
)
from ...tuning.service import HyperparameterChoice, JobRequest
from ..deps import Caller
from ..deps import fine_tuning as service
from ..finetune_views import checkpoint_object, deleted_model_object, event_object, job_object
from ._common import both_prefixes, json_response

router = APIRouter(tags=["fine-tuning"])


def _choice(given: HyperparametersIn | None) -> HyperparameterChoice:
    if given is None:
        return HyperparameterChoice()
    return HyperparameterChoice(**given.model_dump(exclude_unset=False))


def job_request(body: FineTuningJobCreate) -> JobRequest:
    method = body.method
    settings = None if method is None else (method.dpo if method.type == "dpo" else method.supervised)
    return JobRequest(
        model=body.model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        hyperparameters=_choice(body.hyperparameters),
        method="supervised" if method is None else method.type,
        method_hyperparameters=_choice(settings.hyperparameters if settings else None),
        suffix=body.suffix,
        request_id=None if body.request_id is None else str(body.request_id),
        seed=body.seed,
    )


@both_prefixes(router, "POST", "/fine_tuning/jobs")
async def create_job(body: FineTuningJobCreate, request: Request, principal: Caller) -> Response:
    job = await service(request).create(principal, job_request(body))
    return json_response(job_object(job), nulls=True)


@both_prefixes(router, "GET", "/fine_tuning/jobs")
async def list_jobs(
    request: Request, principal: Caller, after: Cursor | None = None, limit: int = Query(default=20, ge=1, le=100)
) -> Response:
    jobs, more = await service(request).list_jobs(principal, after=after, limit=limit)
    return json_response(FineTuningJobList(data=[job_object(job) for job in jobs], has_more=more), nulls=True)


@both_prefixes(router, "GET", "/fine_tuning/jobs/{job_id}")
async def get_job(job_id: str, request: Request, principal: Caller) -> Response:
    return json_response(job_object(await service(request).get(principal, job_id)), nulls=True)


@both_prefixes(router, "GET", "/fine_tuning/jobs/{job_id}/events")
async def job_events(
    job_id: str,
    request: Request,
    principal: Caller,
    after: Cursor | None = None,
    limit: int = Query(default=20, ge=1, le=1000),
) -> Response:
    page = await service(request).events(principal, job_id, after=after, limit=limit)
    events = [event_object(event) for event in page.events]
    return json_response(FineTuningJobEventList(data=events, has_more=page.has_more))


@both_prefixes(router, "GET", "/fine_tuning/jobs/{job_id}/checkpoints")
async def job_checkpoints(
    job_id: str,
    request: Request,
    principal: Caller,
    after: Cursor | None = None,
    limit: int = Query(default=10, ge=1, le=100),
) -> Response:
    job, page = await service(request).checkpoints(principal, job_id, after=after, limit=limit)
    data = [checkpoint_object(job, event) for event in page.events]
    listing = FineTuningJobCheckpointList(
        data=data,
        has_more=page.has_more,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )
    return json_response(listing)


@both_prefixes(router, "POST", "/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, principal: Caller) -> Response:
    return json_response(job_object(await service(request).cancel(principal, job_id)), nulls=True)


@both_prefixes(router, "POST", "/fine_tuning/jobs/{job_id}/pause")
async def pause_job(job_id: str, request: Request, principal: Caller) -> Response:
    return json_response(job_object(await service(request).pause(principal, job_id)), nulls=True)


@both_prefixes(router, "POST", "/fine_tuning/jobs/{job_id}/resume")
async def resume_job(job_id: str, request: Request, principal: Caller) -> Response:
    return json_response(job_object(await service(request).resume(principal, job_id)), nulls=True)


@both_prefixes(router, "DELETE", "/fine_tuning/jobs/{job_id}")
async def delete_job(job_id: str, request: Request, principal: Caller) -> Response:
    return json_response(job_object(await service(request).delete(principal, job_id)), nulls=True)


@both_prefixes(router, "DELETE", "/fine_tuning/fine_tuned_models/{model:path}")
async def delete_fine_tuned_model(model: str, request: Request, principal: Caller) -> Response:
    return json_response(deleted_model_object(await service(request).delete_model(principal, model)))
