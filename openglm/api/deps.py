"""Request dependencies: who is calling, and the services of ``app.state`` as typed parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from ..accounts.auth import Principal
from ..batches.service import BatchService
from ..knowledge.service import KnowledgeService
from ..runs.deferred import AsyncCalls
from ..runs.service import RunService
from .request_guard import ADMIN, CALLER


async def caller(request: Request) -> Principal:
    """The principal the request guard authenticated from the headers (before the body was read), else now."""
    principal: Principal | None = request.scope.get("state", {}).get(CALLER)
    if principal is None:
        principal = await request.app.state.platform.caller(request.headers.get("authorization"))
    return principal


async def admin(request: Request) -> Principal:
    principal: Principal | None = request.scope.get("state", {}).get(ADMIN)
    if principal is None:
        principal = await request.app.state.platform.admin(request.headers.get("authorization"))
    return principal


Caller = Annotated[Principal, Depends(caller)]


def runs(request: Request) -> RunService:
    service: RunService = request.app.state.runs
    return service


Runs = Annotated[RunService, Depends(runs)]


def knowledge(request: Request) -> KnowledgeService:
    service: KnowledgeService = request.app.state.knowledge
    return service


Knowledge = Annotated[KnowledgeService, Depends(knowledge)]


def async_calls(request: Request) -> AsyncCalls:
    service: AsyncCalls = request.app.state.async_calls
    return service


AsyncCallsDep = Annotated[AsyncCalls, Depends(async_calls)]


def batches(request: Request) -> BatchService:
    service: BatchService = request.app.state.batches
    return service


Batches = Annotated[BatchService, Depends(batches)]
