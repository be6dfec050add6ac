"""Helpers shared by the route modules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...accounts.auth import Principal
from ...accounts.metering import MeteredCall
from ...catalog import AgentSpec
from ...errors import ModelNotFoundError
from ...glms.store import AgentRecord
from ...serving.models import ServedModel
from ...serving.usage import UsageBound
from ...tuning.finetuned import AdapterTarget, is_fine_tuned_name


def json_response(model: BaseModel, status_code: int = 200, *, nulls: bool = False) -> JSONResponse:
    """``nulls``: keep fields that are None (as ``null``) instead of leaving them out."""
    return JSONResponse(model.model_dump(mode="json", exclude_none=not nulls), status_code=status_code)


CLIENT_CLOSED = 499  # nginx's status for "the client went away"


def compact_json(model: BaseModel) -> Response:
    """Serialized by pydantic's core: ~6x faster than ``json_response`` for large bodies (embedding vectors)."""
    return Response(model.model_dump_json(exclude_none=True), media_type="application/json")


async def until_disconnect(
    request: Request, work: Awaitable[BaseModel], render: Callable[[BaseModel], Response] = json_response
) -> Response:
    """Run ``work`` and answer with it; if the client goes away first, cancel it so its slots are freed."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                return render(task.result())
            if await request.is_disconnected():
                return Response(status_code=CLIENT_CLOSED)
    finally:
        if not task.done():
            task.cancel()


async def admit(
    request: Request,
    principal: Principal,
    served: ServedModel,
    endpoint: str,
    usage_id: str | None,
    request_id: str | None,
    bound: UsageBound,
) -> MeteredCall:
    """Limits, balance and a reservation of ``bound``'s cost, before the engine is touched."""
    call: MeteredCall = await request.app.state.platform.meter.admit(principal, served.spec, endpoint, bound=bound)
    if usage_id is not None:
        call.bind(usage_id, request_id)
    return call


class Cancellable(Protocol):
    def cancel(self) -> None: ...


def closer(run: Cancellable, call: MeteredCall) -> Callable[[], None]:
    """What a streamed response does when it is over, however it ended: stop generating, settle the call."""

    def close() -> None:
        run.cancel()
        call.close()

    return close


Handler = TypeVar("Handler", bound=Callable[..., Any])
PREFIXES = ("/v1", "/api/paas/v4")


def both_prefixes(router: APIRouter, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method path`` under the OpenAI (/v1) and the Zhipu (/api/paas/v4) prefix."""

    def decorate(handler: Handler) -> Handler:
        for prefix in PREFIXES:
            router.api_route(prefix + path, methods=[method])(handler)
        return handler

    return decorate


async def fine_tuned_target(request: Request, principal: Principal, model: str) -> AdapterTarget | None:
    """For a fine-tuned model's name: its base and adapter, if the caller's account owns it (else 1211); None for
    every other name."""
    return await owned_target(request, principal.account_id, model)


async def owned_target(request: Request, account_id: str, model: str) -> AdapterTarget | None:
    """``fine_tuned_target`` for the models of ``account_id`` (a GLM's creator's, whoever calls the GLM)."""
    if not is_fine_tuned_name(model):
        return None
    target: AdapterTarget = await request.app.state.fine_tuning.resolve(account_id, model)
    return target


async def usable_model(request: Request, account_id: str, model: str) -> AdapterTarget | None:
    """A model an agent of ``account_id`` may run on: a chat model this server serves (None), or one of the
    account's fine-tuned models (its base and adapter); anything else is 1211."""
    target = await owned_target(request, account_id, model)
    if target is None:
        request.app.state.models.get(model)  # 1211 for a model this server does not serve
    return target


async def retargeted(
    request: Request, spec: AgentSpec, model: str, account_id: str
) -> tuple[AgentSpec, AdapterTarget | None]:
    """A catalog agent running on ``model`` instead of its own (``agent_model`` in chat, ``model`` in the assistant
    API): a chat model this server serves, or a fine-tuned model of the caller's ``account_id`` (another account's
    is 1211, as everywhere), with its base and adapter. Its instructions, rounds and HTTP tools stay the agent's."""
    adapter = await usable_model(request, account_id, model)
    return spec.model_copy(update={"model": model}), adapter


async def glm_adapter(request: Request, glm: AgentRecord) -> AdapterTarget | None:
    """A GLM whose model is one of its creator's fine-tuned models runs on it for every caller: the creator's
    adapter, billed to the caller at the base's price (as the model's own chats are), the call attributed to the
    GLM; the model itself stays private (another account calling its id gets 1211). One deleted since is a 1211
    that does not name it (others do not see a GLM's configuration). None for a GLM on a catalog model."""
    try:
        return await owned_target(request, glm.account_id, glm.config.model)
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"the model of GLM {glm.id} is no longer available; its creator must choose another"
        ) from None


def served_model(request: Request, model: str, adapter: AdapterTarget | None) -> ServedModel:
    """The model a plan runs: the catalog's, or a fine-tuned one on its base (``ModelPool.for_adapter``)."""
    pool = request.app.state.models
    served: ServedModel = pool.get(model) if adapter is None else pool.for_adapter(adapter)
    return served
