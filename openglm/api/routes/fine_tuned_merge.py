"""Merging a fine-tuned model into a full GGUF (an OpenGLM extension; Zhipu and OpenAI have no such call), under both
prefixes: ``POST`` asks for a merge (a job), ``GET`` shows it, ``DELETE`` serves the adapter on the base again.

Included before ``fine_tuning.py``, whose ``DELETE /fine_tuning/fine_tuned_models/{model:path}`` would otherwise take
``DELETE …/{model}/merge`` for the deletion of a model named ``<model>/merge``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...protocol.fine_tuning import FineTunedModelMergeCreate
from ..deps import Caller
from ..deps import fine_tuning as service
from ..finetune_views import merge_object
from ._common import both_prefixes, json_response

router = APIRouter(tags=["fine-tuning"])
PATH = "/fine_tuning/fine_tuned_models/{model}/merge"


@both_prefixes(router, "POST", PATH)
async def merge_model(
    model: str, request: Request, principal: Caller, body: FineTunedModelMergeCreate | None = None
) -> Response:
    quantization = body.quantization if body is not None else "auto"
    status = await service(request).merge(principal, model, quantization)
    return json_response(merge_object(status), nulls=True)


@both_prefixes(router, "GET", PATH)
async def merge_status(model: str, request: Request, principal: Caller) -> Response:
    return json_response(merge_object(await service(request).merge_status(principal, model)), nulls=True)


@both_prefixes(router, "DELETE", PATH)
async def unmerge_model(model: str, request: Request, principal: Caller) -> Response:
    return json_response(merge_object(await service(request).unmerge(principal, model)), nulls=True)
