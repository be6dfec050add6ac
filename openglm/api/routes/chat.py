from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import partial

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.auth import Principal
from ...accounts.metering import Attribution, Meter, MeteredCall, metered_result, metered_stream
from ...agent.loop import AgentRun
from ...agent.service import AgentService
from ...agent.stream import AllToolsWriter
from ...agent.tools.base import AgentTool
from ...agent.tools.http_api import load_document_isolated, operations
from ...catalog import AgentSpec, PricedModel
from ...errors import InvalidFieldError, ModelNotFoundError, NotFoundError
from ...glms.conversations import ConversationRecord, ConversationStore, new_conversation_id
from ...glms.recording import TurnSaver
from ...glms.store import AgentRecord
from ...knowledge.chat import Grounding, question_of, retrieval_tools
from ...knowledge.service import KnowledgeService
from ...protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    RetrievalCitation,
    ToolDefinition,
)
from ...serving.responses import collect_chat, stream_chat
from ...serving.usage import UsageBound, new_usage_id, token_bound
from ...tuning.finetuned import AdapterTarget
from ..deps import Caller
from ..sse import sse_response
from ._common import (
    admit,
    closer,
    fine_tuned_target,
    glm_adapter,
    retargeted,
    served_model,
    until_disconnect,
)

router = APIRouter(tags=["chat"])
GLM_ID = re.compile(r"[0-9a-f]{24}")


@router.post("/v1/chat/completions")
@router.post("/api/paas/v4/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, principal: Caller) -> Response:
    plan = catalog_plan(request, body.model)
    if plan is not None:
        if body.agent_model is not None:
            plan = await on_model(request, plan, body.agent_model, principal.account_id)
        return await agent_completions(body, request, principal, plan)
    if body.agent_model is not None:
        raise InvalidFieldError(
            "agent_model: only a catalog All Tools agent runs on a model the request chooses (a GLM runs on its "
            "creator's; a model is itself)"
        )
    if GLM_ID.fullmatch(body.model):
        try:
            glm = await request.app.state.glms.get(principal.account_id, body.model)
        except NotFoundError:
            raise ModelNotFoundError(f"模型不存在 / model or agent {body.model!r} does not exist") from None
        return await glm_completions(body, request, principal, glm)
    service = request.app.state.chat
    adapter = await fine_tuned_target(request, principal, body.model)
    pool = request.app.state.models
    served = pool.get(body.model) if adapter is None else await pool.for_fine_tuned(adapter)
    # The key's limits and the balance before any planning (templates, grammars); the reservation after it,
    # since it needs the plan's bound.
    call = await request.app.state.platform.meter.enter(principal, served.spec, "chat.completions")
    grounding = Grounding()
    if retrieval_tools(body):
        await call.guard(service.plan(body, adapter))  # a bad request is refused before anything is retrieved or billed
        body, grounding = await call.guard(ground(request, principal, body))
    planned = await call.guard(service.plan(body, adapter))
    await call.hold(planned.usage_bound())
    call.bind(planned.id, planned.request_id)
    run = await call.guard(service.submit(planned))
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
    bound = UsageBound(prompt_tokens=token_bound(question_of(body)[1]) * len(tools))  # the question, per base
    call = await request.app.state.platform.meter.admit(principal, spec, "knowledge.retrieve", nested=True, bound=bound)
    usage_id = new_usage_id("ret")
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


@dataclass(frozen=True)
class AgentPlan:
    """What an agent request runs with: a catalog agent's or a GLM's spec, its server-side HTTP tools, whose
    knowledge bases its retrieval reads, whom its usage is attributed to, and — when ``spec.model`` is a fine-tuned
    model — its base and adapter."""

    spec: AgentSpec
    server_tools: list[AgentTool] | None = None
    resources_of: str | None = None
    attribution: Attribution | None = None
    adapter: AdapterTarget | None = None


def catalog_plan(request: Request, agent_id: str) -> AgentPlan | None:
    agents: AgentService = request.app.state.agents
    spec = agents.spec(agent_id)
    return None if spec is None else AgentPlan(spec, agents.server_tools.get(agent_id))


async def on_model(request: Request, plan: AgentPlan, model: str, account_id: str) -> AgentPlan:
    """A catalog agent on the model ``agent_model`` names (``_common.retargeted``)."""
    spec, adapter = await retargeted(request, plan.spec, model, account_id)
    return replace(plan, spec=spec, adapter=adapter)


async def prepare_agent(
    body: ChatCompletionRequest, request: Request, principal: Principal, plan: AgentPlan
) -> tuple[AgentRun, UsageBound]:
    """The loop's run, its first round planned now: a bad request is a 400, not an error inside a 200 stream;
    and the most that first round can be billed for (admission reserves it; later rounds reserve their own)."""
    agents: AgentService = request.app.state.agents
    billing = partial(nested_call, request.app.state.platform.meter, principal, plan.attribution)
    run = agents.loop.prepare(
        plan.spec,
        body,
        principal.account_id,
        billing,
        plan.server_tools,
        str(request.base_url),
        resources_of=plan.resources_of,
        adapter=plan.adapter,
    )
    return run, await agents.loop.validate(run)


async def nested_call(
    meter: Meter,
    principal: Principal,
    attribution: Attribution | None,
    spec: PricedModel,
    endpoint: str,
    bound: UsageBound,
) -> MeteredCall:
    """A billable call a tool makes inside an agent run (a picture, a retrieval's embedding): admitted as nested
    (its own reservation, no second slot of the key's limits), and attributed like the run itself, so a GLM's
    creator share and usage include it."""
    call = await meter.admit(principal, spec, endpoint, nested=True, bound=bound)
    call.agent = attribution
    return call


async def admit_agent(
    request: Request,
    principal: Principal,
    plan: AgentPlan,
    endpoint: str,
    usage_id: str,
    request_id: str,
    first_round: UsageBound,
) -> MeteredCall:
    served = served_model(request, plan.spec.model, plan.adapter)  # a fine-tuned model: metered under its id
    call = await admit(request, principal, served, endpoint, usage_id, request_id, first_round)
    call.agent = plan.attribution
    if plan.attribution is not None:
        await call.guard(request.app.state.glms.count_use(plan.attribution.agent_id))  # a use: an admitted call
    return call


async def agent_completions(
    body: ChatCompletionRequest,
    request: Request,
    principal: Principal,
    plan: AgentPlan,
    turn: TurnSaver | None = None,
) -> Response:
    """An All Tools agent (a catalog one, or a GLM): the tool loop, in the glm-4-alltools format."""
    if not body.stream:
        raise InvalidFieldError("stream: All Tools agents answer as a stream only; set stream=true")
    run, first_round = await prepare_agent(body, request, principal, plan)
    writer = AllToolsWriter(run, body.model)
    request_id = str(body.request_id or writer.id)
    call = await admit_agent(request, principal, plan, "chat.completions", writer.id, request_id, first_round)
    events = request.app.state.agents.loop.run(run, call.tally, call.reserve_round)
    if turn is not None:
        events = turn.record(events, call.tally)
    chunks = writer.chunks(events, call.tally)
    return sse_response(metered_stream(call, chunks), on_close=call.close)


async def glm_completions(
    body: ChatCompletionRequest, request: Request, principal: Principal, glm: AgentRecord
) -> Response:
    """A GLM in chat: run as an All Tools agent (``glm_plan``). The conversation is stored under its
    ``conversation_id`` (one is made when none is given) with the GLM version it started with, which it keeps."""
    conversations: ConversationStore = request.app.state.conversations
    conversation_id = body.conversation_id or new_conversation_id()
    existing = await conversations.find(principal.account_id, conversation_id)
    glm = await pinned_glm(request, principal, existing, glm)
    body = body.model_copy(update={"conversation_id": conversation_id})
    body, plan = await glm_plan(request, glm, body)
    turn = TurnSaver(
        conversations,
        principal.account_id,
        conversation_id,
        glm.id,
        glm.version,
        turn_user_text(body),
        continues=existing is not None,
    )
    return await agent_completions(body, request, principal, plan, turn)


async def pinned_glm(
    request: Request, principal: Principal, existing: ConversationRecord | None, glm: AgentRecord
) -> AgentRecord:
    """The GLM as a stored conversation started with it (an edit does not change a running conversation's
    instructions, model or tools; knowledge bases and HTTP APIs the creator has removed since are gone from it)."""
    if existing is None:
        return glm
    if existing.assistant_id != glm.id:
        raise InvalidFieldError(f"conversation_id: conversation {existing.id!r} is with another assistant")
    if existing.agent_version is None or existing.agent_version == glm.version:
        return glm
    pinned: AgentRecord = await request.app.state.glms.pinned(principal.account_id, glm.id, existing.agent_version)
    return pinned


async def glm_plan(
    request: Request, glm: AgentRecord, body: ChatCompletionRequest
) -> tuple[ChatCompletionRequest, AgentPlan]:
    """A GLM: its creator's instructions, model, tools and knowledge bases. The caller's own function tools
    come along; built-ins the GLM does not enable do not. Its usage is attributed to it and its creator. Its
    OpenAPI documents are parsed in a worker unless cached (up to 4 × 200 KB of a user's YAML per chat)."""
    agents: AgentService = request.app.state.agents
    config = glm.config
    tools = [builtin_entry(tool, config.knowledge_ids) for tool in config.tools]
    tools += [t for t in body.tools or [] if t.type == "function"]
    body = body.model_copy(
        update={"tools": tools or None, "messages": with_instructions(body.messages, config.instructions)}
    )
    assert agents.user_http_fetcher is not None
    server_tools: list[AgentTool] = []
    for api in config.http_apis:
        document = await load_document_isolated(api.openapi)
        server_tools += operations(document, base_url=api.base_url, auth=api.auth, fetcher=agents.user_http_fetcher)
    spec = AgentSpec(id=glm.id, model=config.model)
    plan = AgentPlan(spec, server_tools, glm.account_id, Attribution(glm.id, glm.account_id))
    return body, replace(plan, adapter=await glm_adapter(request, glm))


def turn_user_text(body: ChatCompletionRequest) -> str | None:
    """The user message a GLM chat turn stores: the last one; none when the request continues after the caller's
    function results (a last ``tool`` message: that user message was stored with the turn that called them)."""
    if body.messages and body.messages[-1].role == "tool":
        return None
    return last_user_text(body)


def last_user_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            return message_text(message.content)
    return ""


def message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(getattr(part, "text", None) or "") for part in content)
    return ""


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
