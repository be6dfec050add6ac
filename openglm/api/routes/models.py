"""``/models`` (both prefixes: list, retrieve, delete a fine-tuned model; ``runs/directory.py``) and ``/health``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..deps import Caller, Runs
from ..deps import embeddings as _embeddings
from ..deps import models as _models
from ..deps import platform as _platform
from ..finetune_views import deleted_model_object
from ._common import json_response

router = APIRouter(tags=["models"])


@router.get("/v1/models")
@router.get("/api/paas/v4/models")
async def list_models(principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.directory.every(principal))


@router.get("/v1/models/{name:path}")  # names may hold a slash (sentence-transformers/...)
@router.get("/api/paas/v4/models/{name:path}")
async def get_model(name: str, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.directory.card(principal, name))


@router.delete("/v1/models/{name:path}")  # OpenAI's client.models.delete: fine-tuned models only
@router.delete("/api/paas/v4/models/{name:path}")
async def delete_model(name: str, principal: Caller, runs: Runs) -> Response:
    return json_response(deleted_model_object(await runs.directory.delete(principal, name)))


@router.get("/health")  # public: load balancers probe it without a key
async def health(request: Request) -> Response:
    pool = _models(request)
    engines = {served.spec.id: served.engine.stats() for served in pool.served()}
    embeddings = _embeddings(request).stats()
    # Calls settled but not in the database (waiting in the usage spool): an operator's alarm, never silent.
    metering = {"unrecorded_usage": _platform(request).meter.unrecorded_count()}
    return JSONResponse(
        {"status": "ok", "models": list(engines), "engines": engines, "embeddings": embeddings, "metering": metering}
    )
