from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...embeddings.service import EmbeddingService
from ...errors import ModelNotFoundError, PermissionDeniedError
from ...protocol.chat import ModelCard, ModelList
from ...serving.models import ModelPool
from ...tuning.finetuned import FineTunedRecord, is_fine_tuned_name
from ..deps import Caller
from ..deps import embeddings as _embeddings
from ..deps import fine_tuning as _fine_tuning
from ..deps import models as _models
from ..deps import platform as _platform
from ..finetune_views import deleted_model_object
from ._common import json_response

router = APIRouter(tags=["models"])


def model_cards(pool: ModelPool, fine_tunable: Callable[[str], bool]) -> list[ModelCard]:
    cards = []
    for served in pool.served():
        spec = served.spec
        for name in (spec.id, *spec.aliases):
            cards.append(
                ModelCard(
                    id=name,
                    created=0,
                    owned_by=spec.owned_by,
                    root=spec.id,
                    context_length=spec.context_length,
                    kind="chat",
                    fine_tunable=fine_tunable(spec.id),
                )
            )
    loaded = {served.spec.id for served in pool.served()}
    for agent in pool.catalog.agents.values():  # All Tools agents are called like models
        model = pool.catalog.lookup(agent.model)
        if model.id in loaded:
            cards.append(
                ModelCard(
                    id=agent.id,
                    created=0,
                    owned_by="openglm",
                    root=model.id,
                    context_length=model.context_length,
                    kind="agent",
                )
            )
    return cards


def embedding_card(name: str, embeddings: EmbeddingService) -> ModelCard:
    """``context_length`` of an embedding model: its tokens per input (0 where only the model knows)."""
    spec = embeddings.resolve(name)
    return ModelCard(
        id=name,
        created=0,
        owned_by=spec.owned_by,
        root=spec.id,
        context_length=spec.max_input_tokens or 0,
        kind="embedding",
    )


def fine_tuned_card(record: FineTunedRecord, pool: ModelPool) -> ModelCard:
    """A fine-tuned model: listed to its account only, ``owned_by`` the account, ``root`` its base."""
    base = pool.catalog.lookup(record.base_model) if record.base_model in pool.catalog.names() else None
    return ModelCard(
        id=record.id,
        created=int(record.created_at.timestamp()),
        owned_by=record.owned_by,
        root=record.base_model,
        context_length=base.context_length if base is not None else 0,
        kind="chat",
        fine_tunable=False,  # adapters do not stack: a job trains on the base
    )


@router.get("/v1/models")
@router.get("/api/paas/v4/models")
async def list_models(request: Request, principal: Caller) -> Response:
    embeddings: EmbeddingService = _embeddings(request)
    pool: ModelPool = _models(request)
    tuning = _fine_tuning(request)
    cards = model_cards(pool, tuning.fine_tunable) + [embedding_card(name, embeddings) for name in embeddings.models]
    cards += [fine_tuned_card(r, pool) for r in await tuning.models_of(principal.account_id)]
    return json_response(ModelList(data=cards))


@router.get("/v1/models/{name:path}")  # names may hold a slash (sentence-transformers/...)
@router.get("/api/paas/v4/models/{name:path}")
async def get_model(name: str, request: Request, principal: Caller) -> Response:
    pool: ModelPool = _models(request)
    embeddings: EmbeddingService = _embeddings(request)
    if is_fine_tuned_name(name):
        return json_response(fine_tuned_card(await _fine_tuning(request).model(principal.account_id, name), pool))
    try:
        served = pool.get(name)
    except ModelNotFoundError:
        if name not in embeddings.models:
            raise
        return json_response(embedding_card(name, embeddings))
    spec = served.spec
    card = ModelCard(
        id=name,
        created=0,
        owned_by=spec.owned_by,
        root=spec.id,
        context_length=spec.context_length,
        fine_tunable=_fine_tuning(request).fine_tunable(spec.id),
    )
    return json_response(card)


@router.delete("/v1/models/{name:path}")  # OpenAI's client.models.delete: fine-tuned models only
@router.delete("/api/paas/v4/models/{name:path}")
async def delete_model(name: str, request: Request, principal: Caller) -> Response:
    if not is_fine_tuned_name(name):
        _models(request).get(name)  # 1211 for a name that is no model at all
        raise PermissionDeniedError(f"model {name!r} is in the server's catalog; only fine-tuned models are deleted")
    return json_response(deleted_model_object(await _fine_tuning(request).delete_model(principal, name)))


@router.get("/health")  # public: load balancers probe it without a key
async def health(request: Request) -> Response:
    pool: ModelPool = _models(request)
    engines = {served.spec.id: served.engine.stats() for served in pool.served()}
    embeddings = _embeddings(request).stats()
    # Calls settled but not in the database (waiting in the usage spool): an operator's alarm, never silent.
    metering = {"unrecorded_usage": _platform(request).meter.unrecorded_count()}
    return JSONResponse(
        {"status": "ok", "models": list(engines), "engines": engines, "embeddings": embeddings, "metering": metering}
    )
