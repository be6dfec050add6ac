from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from functools import partial

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.auth import Principal
from ...accounts.metering import metered_result, metered_stream
from ...agent.service import AgentService
from ...agent.stream import AllToolsWriter
from ...agent.tools.base import AgentTool
from ...agent.tools.http_api import load_document, operations
from ...catalog import AgentSpec
from ...errors import InvalidFieldError, ModelNotFoundError, NotFoundError
from ...glms.store import AgentRecord
from ...knowledge.chat import Grounding, retrieval_tools
from ...knowledge.service import KnowledgeService
from ...serving.responses import collect_chat, stream_chat
from ..deps import Caller
from ..schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    RetrievalCitation,
    ToolDefinition,
)
from ..sse import sse_response
from ._common import admit, closer, until_disconnect

router = APIRouter(tags=["chat"])
GLM_ID = re.compile(r"[0-9a-f]{24}")


@router.post("/v1/chat/completions")
@router.post("/api/paas/v4/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, principal: Caller) -> Response:
    if request.app.state.agents.spec(body.model) is not None:
        return await agent_completions(body, request, principal)
    if GLM_ID.fullmatch(body.model):
        try:
            glm = await request.app.state.glms.get(principal.account_id, body.model)
        except NotFoundError:
            raise ModelNotFoundError(f"模型不存在 / model or agent {body.model!r} does not exist") from None
        return await glm_completions(body, request, principal, glm)
    service = request.app.state.chat
    grounding = Grounding()
    if retrieval_tools(body):
        service.plan(body)  # a bad request is refused before anything is retrieved or billed
        body, grounding = await ground(request, principal, body)
    plan = service.plan(body)
    call = await admit(request, principal, plan.served, "chat.completions", plan.id, plan.request_id)
    run = await call.guard(service.submit(plan))
    call.tally.prompt_tokens = run.prompt_tokens
    citations = grounding.citations() if grounding.chunks else None
    if body.stream:
        chunks = with_citations(stream_chat(service, run, call.tally), citations)
        return sse_response(metered_stream(call, chunks), on_close=closer(run, call))

    async def answer() -> ChatCompletion:
        completion = await collect_chat(service, run, call.tally)
        completion.retrieval = citations
        return completion

    return await until_disconnect(request, metered_result(call, answer()))


async def ground(
    request: Request, principal: Principal, body: ChatCompletionRequest
) -> tuple[ChatCompletionRequest, Grounding]:
    """``retrieval`` tools: the question answered from knowledge bases; the query's embedding is billed."""
    tools = retrieval_tools(body)
    knowledge: KnowledgeService = request.app.state.knowledge
    base = await knowledge.store.get(principal.account_id, tools[0].knowledge_id)
    spec = knowledge.embeddings.resolve(base.embedding_model)
    call = await request.app.state.platform.meter.admit(principal, spec, "knowledge.retrieve", nested=True)
    usage_id = "ret-" + secrets.token_hex(12)
    call.bind(usage_id, usage_id)

    async def retrieve() -> tuple[ChatCompletionRequest, Grounding]:
        grounded, grounding = await knowledge.ground(principal.account_id, body)
        call.tally.prompt_tokens = grounding.query_tokens
        return grounded, grounding

    return await metered_result(call, retrieve())


async def with_citations(
    chunks: AsyncIterator[ChatCompletionChunk], citations: list[RetrievalCitation] | None
) -> AsyncIterator[ChatCompletionChunk]:
    first = True
    async for chunk in chunks:
        if first and citations:
            chunk.retrieval = citations
        first = False
        yield chunk


async def agent_completions(
    body: ChatCompletionRequest,
    request: Request,
    principal: Principal,
    *,
    spec: AgentSpec | None = None,
    server_tools: list[AgentTool] | None = None,
    resources_of: str | None = None,
) -> Response:
    """An All Tools agent (a catalog one, or a GLM's ``spec``): the tool loop, in the glm-4-alltools format."""
    agents: AgentService = request.app.state.agents
    if spec is None:
        spec = agents.spec(body.model)
        server_tools = agents.server_tools.get(body.model)
    assert spec is not None
    if not body.stream:
        raise InvalidFieldError("stream: All Tools agents answer as a stream only; set stream=true")
    meter = request.app.state.platform.meter
    billing = partial(meter.admit, principal, nested=True)
    run = agents.loop.prepare(
        spec, body, principal.account_id, billing, server_tools, str(request.base_url), resources_of=resources_of
    )
    agents.loop.validate(run)  # a bad request is a 400 now, not an error event inside a 200 stream
    writer = AllToolsWriter(run, body.model)
    served = request.app.state.models.get(spec.model)
    call = await admit(request, principal, served, "chat.completions", writer.id, str(body.request_id or writer.id))
    chunks = writer.chunks(agents.loop.run(run, call.tally), call.tally)
    return sse_response(metered_stream(call, chunks), on_close=call.close)


async def glm_completions(
    body: ChatCompletionRequest, request: Request, principal: Principal, glm: AgentRecord
) -> Response:
    """A GLM: its creator's instructions, model, tools and knowledge bases, run as an All Tools agent. The
    caller's own function tools come along; built-ins the GLM does not enable do not."""
    agents: AgentService = request.app.state.agents
    config = glm.config
    spec = AgentSpec(id=glm.id, model=config.model)
    tools = [builtin_entry(tool, config.knowledge_ids) for tool in config.tools]
    tools += [t for t in body.tools or [] if t.type == "function"]
    body = body.model_copy(
        update={"tools": tools or None, "messages": with_instructions(body.messages, config.instructions)}
    )
    assert agents.http_fetcher is not None
    server_tools: list[AgentTool] = [
        op
        for api in config.http_apis
        for op in operations(
            load_document(api.openapi), base_url=api.base_url, auth=api.auth, fetcher=agents.http_fetcher
        )
    ]
    await request.app.state.glms.count_use(glm.id)
    return await agent_completions(
        body, request, principal, spec=spec, server_tools=server_tools, resources_of=glm.account_id
    )


def builtin_entry(tool: str, knowledge_ids: list[str]) -> ToolDefinition:
    if tool == "retrieval":
        return ToolDefinition(type="retrieval", retrieval={"knowledge_ids": knowledge_ids})
    return ToolDefinition(type=tool)


def with_instructions(messages: list[ChatMessage], instructions: str) -> list[ChatMessage]:
    """The creator's instructions lead the system prompt; a caller's own system message follows them."""
    if not instructions:
        return messages
    own = "\n\n".join(m.content for m in messages if m.role == "system" and isinstance(m.content, str) and m.content)
    system = ChatMessage(role="system", content=instructions + (f"\n\n{own}" if own else ""))
    return [system, *(m for m in messages if m.role != "system")]
