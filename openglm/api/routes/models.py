from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...embeddings.service import EmbeddingService
from ...errors import ModelNotFoundError
from ...serving.models import ModelPool
from ..deps import Caller
from ..schemas import ModelCard, ModelList
from ._common import json_response

router = APIRouter(tags=["models"])


def model_cards(pool: ModelPool) -> list[ModelCard]:
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


@router.get("/v1/models")
@router.get("/api/paas/v4/models")
async def list_models(request: Request, _: Caller) -> Response:
    embeddings: EmbeddingService = request.app.state.embeddings
    cards = model_cards(request.app.state.models) + [embedding_card(name, embeddings) for name in embeddings.models]
    return json_response(ModelList(data=cards))


@router.get("/v1/models/{name:path}")  # names may hold a slash (sentence-transformers/...)
@router.get("/api/paas/v4/models/{name:path}")
async def get_model(name: str, request: Request, _: Caller) -> Response:
    pool: ModelPool = request.app.state.models
    embeddings: EmbeddingService = request.app.state.embeddings
    try:
        served = pool.get(name)
    except ModelNotFoundError:
        if name not in embeddings.models:
            raise
        return json_response(embedding_card(name, embeddings))
    spec = served.spec
    return json_response(
        ModelCard(id=name, created=0, owned_by=spec.owned_by, root=spec.id, context_length=spec.context_length)
    )


@router.get("/health")  # public: load balancers probe it without a key
async def health(request: Request) -> Response:
    pool: ModelPool = request.app.state.models
    engines = {served.spec.id: served.engine.stats() for served in pool.served()}
    embeddings = request.app.state.embeddings.stats()
    # Calls settled but not in the database (waiting in the usage spool): an operator's alarm, never silent.
    metering = {"unrecorded_usage": request.app.state.platform.meter.unrecorded_count()}
    return JSONResponse(
        {"status": "ok", "models": list(engines), "engines": engines, "embeddings": embeddings, "metering": metering}
    )
