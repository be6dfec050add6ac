"""Request dependencies: who is calling, and the services of ``app.state`` as typed parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends
from starlette.requests import Request

from ..accounts.auth import Principal
from ..accounts.platform import Platform
from ..agent.service import AgentService
from ..batches.service import BatchService
from ..embeddings.service import EmbeddingService
from ..evals.service import EvalService
from ..files.parser import FileParsing
from ..files.store import FileStore
from ..glms.conversations import ConversationStore
from ..glms.store import AgentStore
from ..knowledge.service import KnowledgeService
from ..runs.deferred import AsyncCalls
from ..runs.service import RunService
from ..serving.models import ModelPool
from ..tuning.service import FineTuningService
from .request_guard import ADMIN, CALLER

T = TypeVar("T")


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


def from_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency giving ``app.state.<name>``, checked to be a ``kind``."""

    def service(request: Request) -> T:
        found = getattr(request.app.state, name)
        assert isinstance(found, kind), f"app.state.{name} is not a {kind.__name__}"
        return found

    return service


platform = from_state("platform", Platform)
models = from_state("models", ModelPool)
embeddings = from_state("embeddings", EmbeddingService)
agents = from_state("agents", AgentService)
files = from_state("files", FileStore)
glms = from_state("glms", AgentStore)
conversations = from_state("conversations", ConversationStore)
fine_tuning = from_state("fine_tuning", FineTuningService)
evals = from_state("evals", EvalService)
runs = from_state("runs", RunService)
knowledge = from_state("knowledge", KnowledgeService)
async_calls = from_state("async_calls", AsyncCalls)
batches = from_state("batches", BatchService)
file_parsing = from_state("file_parsing", FileParsing)
Runs = Annotated[RunService, Depends(runs)]
Knowledge = Annotated[KnowledgeService, Depends(knowledge)]
AsyncCallsDep = Annotated[AsyncCalls, Depends(async_calls)]
Batches = Annotated[BatchService, Depends(batches)]
Parsing = Annotated[FileParsing, Depends(file_parsing)]
