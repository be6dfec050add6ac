"""The assistant API (both prefixes): ``POST /assistant`` (a turn of a stored conversation, streamed),
``/assistant/list``, ``/assistant/conversation/list``, and OpenGLM's own conversation endpoints for the web app."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.auth import Principal
from ...accounts.metering import metered_result, metered_stream
from ...agent.assistant_stream import AssistantWriter
from ...agent.service import AgentService
from ...errors import InvalidFieldError, ModelNotFoundError, NotFoundError
from ...files.store import FileStore
from ...glms.assistant import (
    SUGGEST_PROMPT,
    SUGGEST_TOKENS,
    attachments_of,
    history_budget,
    replayed,
    suggest_request,
    suggestions_of,
    user_message,
)
from ...glms.conversations import ConversationRecord, ConversationStore, StoredMessage, new_conversation_id
from ...glms.recording import TurnSaver
from ...glms.store import AgentRecord, AgentStore
from ...protocol.assistant import (
    AssistantRequest,
    AssistantSupport,
    ConversationDetail,
    ConversationMessageOut,
    ConversationOut,
    ConversationPage,
    ConversationQuery,
    ConversationUsage,
    ConversationUsageList,
    ConversationUsageResponse,
    StoredToolCall,
    SuggestList,
    SuggestQuery,
    SupportList,
    SupportQuery,
)
from ...protocol.chat import ChatCompletionRequest, ChatMessage, ToolDefinition, Usage
from ...protocol.common import MAX_PAGE
from ...serving.models import ServedModel
from ...serving.responses import collect_chat
from ...serving.service import ChatService
from ..deps import Caller
from ..sse import sse_response
from ._common import admit, both_prefixes, glm_adapter, json_response, retargeted, served_model, until_disconnect
from .chat import GLM_ID, AgentPlan, admit_agent, catalog_plan, glm_plan, message_text, prepare_agent

router = APIRouter(tags=["assistant"])
CENTER_PAGE = 100
DOCS_DEFAULT_MODEL = "glm-4-assistant"  # the assistant API's documented default: the assistant's own model
SUGGEST_CONTEXT = 6  # the last messages a suggestion reads


def conversations(request: Request) -> ConversationStore:
    store: ConversationStore = request.app.state.conversations
    return store


async def resolve(
    request: Request, principal: Principal, assistant_id: str, version: int | None = None
) -> tuple[AgentPlan | None, AgentRecord | None]:
    """A catalog agent's plan, or a GLM the caller may see (as a conversation pinned to ``version`` runs it:
    ``AgentStore.pinned``); anything else is unknown (1211)."""
    plan = catalog_plan(request, assistant_id)
    if plan is not None:
        return plan, None
    if GLM_ID.fullmatch(assistant_id):
        try:
            return None, await request.app.state.glms.pinned(principal.account_id, assistant_id, version)
        except NotFoundError:
            pass
    raise ModelNotFoundError(f"智能体不存在 / assistant {assistant_id!r} does not exist")


@both_prefixes(router, "POST", "/assistant")
async def assistant_conversation(body: AssistantRequest, request: Request, principal: Caller) -> Response:
    if body.stream is not True:
        raise InvalidFieldError("stream: the assistant API answers as a stream only; set stream=true")
    account = principal.account_id
    existing: ConversationRecord | None = None
    if body.conversation_id is not None:
        existing = await conversations(request).get(account, body.conversation_id)  # 404 unless the caller's
        if existing.assistant_id != body.assistant_id:
            raise InvalidFieldError(
                f"conversation_id: conversation {existing.id!r} is with assistant {existing.assistant_id!r}"
            )
    plan, glm = await resolve(request, principal, body.assistant_id, existing.agent_version if existing else None)
    plan, served = await assistant_model(request, principal, body, plan, glm)
    files: FileStore = request.app.state.files
    attachments = await attachments_of(files, account, [a.file_id for a in body.attachments or []])
    conversation_id = existing.id if existing else new_conversation_id()
    text = message_text(body.messages[0].content)
    history = await conversations(request).messages(account, conversation_id) if existing else []
    new_message = await user_message(files, account, text, attachments)
    budget = history_budget(*context_room(request, served, body), new_message)
    messages = [*await replayed(files, account, history, budget), new_message]
    chat = ChatCompletionRequest(
        model=body.assistant_id,
        messages=messages,
        stream=True,
        conversation_id=conversation_id,
        request_id=body.request_id,
        user_id=body.user_id,
        max_tokens=body.max_tokens,
        tools=None if glm else catalog_tools(request),
    )
    if glm is not None:
        chat, plan = await glm_plan(request, glm, chat)
    assert plan is not None
    with_files(chat, attachments)
    run, first_round = await prepare_agent(chat, request, principal, plan)
    writer = AssistantWriter(body.assistant_id, conversation_id)
    call = await admit_agent(
        request, principal, plan, "assistant", writer.id, body.request_id or writer.id, first_round
    )
    version = glm.version if glm else None
    turn = TurnSaver(
        conversations(request),
        account,
        conversation_id,
        body.assistant_id,
        version,
        text,
        attachments,
        continues=existing is not None,
    )
    agents: AgentService = request.app.state.agents
    events = turn.record(agents.loop.run(run, call.tally, call.reserve_round), call.tally)
    return sse_response(metered_stream(call, writer.chunks(events, call.tally)), on_close=call.close)


async def assistant_model(
    request: Request, principal: Principal, body: AssistantRequest, plan: AgentPlan | None, glm: AgentRecord | None
) -> tuple[AgentPlan | None, ServedModel]:
    """The model the turn runs on. ``model`` (absent from the SDK's requests; the docs' default ``glm-4-assistant``
    means the assistant's own): a catalog agent runs on the one named — a chat model this server serves or one of
    the caller's fine-tuned models (another account's: 1211) —; a GLM runs on its creator's model, which may be
    one of the creator's fine-tuned models (``_common.glm_adapter``), and refuses any named (1214)."""
    chosen = body.model not in (None, DOCS_DEFAULT_MODEL)
    if glm is not None:
        if chosen:  # refused whatever it names: the answer must not tell others which model the GLM has
            raise InvalidFieldError("model: a GLM runs on the model its creator chose; leave model out")
        adapter = await glm_adapter(request, glm)
        return plan, served_model(request, glm.config.model, adapter)
    assert plan is not None
    if chosen:
        assert body.model is not None
        spec, adapter = await retargeted(request, plan.spec, body.model, principal.account_id)
        plan = replace(plan, spec=spec, adapter=adapter)
    return plan, served_model(request, plan.spec.model, plan.adapter)


def context_room(request: Request, served: ServedModel, body: AssistantRequest) -> tuple[int, int]:
    """The model's context length and the room its answer is given (``max_tokens``, or the server's default)."""
    service: ChatService = request.app.state.chat
    return served.spec.context_length, body.max_tokens or service.default_max_tokens


def catalog_tools(request: Request) -> list[ToolDefinition] | None:
    """A catalog agent through the assistant API has the built-ins this server offers (retrieval needs a
    knowledge base, so not that one)."""
    agents: AgentService = request.app.state.agents
    return [ToolDefinition(type=name) for name in agents.tools if name != "retrieval"] or None


def with_files(chat: ChatCompletionRequest, attachments: list[dict[str, str]]) -> None:
    """Attachments are also put in the code interpreter's workspace, when the assistant has one."""
    for tool in chat.tools or []:
        if tool.type == "code_interpreter" and attachments:
            tool.code_interpreter = {**(tool.code_interpreter or {}), "file_ids": [a["file_id"] for a in attachments]}


@both_prefixes(router, "POST", "/assistant/conversation/suggest")
async def suggest(body: SuggestQuery, request: Request, principal: Caller) -> Response:
    """Follow-up questions for a stored conversation: one structured-output call on the assistant's model (a
    JSON-schema grammar, so it works on small models), billed like a chat call and attributed like the turns."""
    account = principal.account_id
    record = await conversations(request).get(account, body.conversation_id)
    if record.assistant_id != body.assistant_id:
        raise InvalidFieldError(f"conversation_id: conversation {record.id!r} is with another assistant")
    plan, glm = await resolve(request, principal, record.assistant_id, record.agent_version)
    if glm is not None:
        _, plan = await glm_plan(request, glm, ChatCompletionRequest(model=glm.id, messages=[]))
    assert plan is not None
    history = await conversations(request).messages(account, record.id)
    files: FileStore = request.app.state.files
    context_length = served_model(request, plan.spec.model, plan.adapter).spec.context_length
    budget = history_budget(context_length, SUGGEST_TOKENS, ChatMessage(role="user", content=SUGGEST_PROMPT))
    recent = await replayed(files, account, history[-SUGGEST_CONTEXT:], budget)
    chat = suggest_request(plan.spec.model, recent)
    service: ChatService = request.app.state.chat
    planned = await service.plan(chat, plan.adapter)
    call = await admit(
        request, principal, planned.served, "assistant.suggest", planned.id, planned.request_id, planned.usage_bound()
    )
    call.agent = plan.attribution
    run = await call.guard(service.submit(planned))
    call.tally.prompt_tokens = run.prompt_tokens

    async def suggestions() -> SuggestList:
        completion = await metered_result(call, collect_chat(service, run, call.tally))
        return SuggestList(suggest_list=suggestions_of(completion.choices[0].message.content))

    return await until_disconnect(request, suggestions())  # a client gone: the generation is cancelled


@both_prefixes(router, "POST", "/assistant/list")
async def assistant_list(body: SupportQuery, request: Request, principal: Caller) -> Response:
    wanted = list(dict.fromkeys(body.assistant_id_list or []))
    if not wanted:
        wanted = list(request.app.state.agents.catalog.agents)
        glms: AgentStore = request.app.state.glms
        mine, _ = await glms.mine(principal.account_id, 1, CENTER_PAGE)
        listed, _ = await glms.center(None, 1, CENTER_PAGE)
        wanted += [a.id for a in [*mine, *listed] if a.id not in wanted]
    data = []
    for assistant_id in wanted:
        try:
            _, glm = await resolve(request, principal, assistant_id)
        except ModelNotFoundError:
            continue
        data.append(support_of(request, assistant_id, glm))
    return json_response(SupportList(data=data))


def support_of(request: Request, assistant_id: str, glm: AgentRecord | None) -> AssistantSupport:
    if glm is not None:
        return AssistantSupport(
            assistant_id=glm.id,
            created_at=int(glm.created_at.timestamp()),
            updated_at=int(glm.updated_at.timestamp()),
            name=glm.name,
            avatar=glm.avatar,
            description=glm.description,
            tools=list(glm.config.tools),
            starter_prompts=glm.config.starter_prompts,
        )
    spec = request.app.state.agents.spec(assistant_id)
    started = int(request.app.state.started_at)
    tools = [tool.type for tool in catalog_tools(request) or []]
    return AssistantSupport(
        assistant_id=assistant_id,
        created_at=started,
        updated_at=started,
        name=assistant_id,
        avatar="",
        description=f"All Tools agent over {spec.model}" if spec else "",
        tools=tools,
        starter_prompts=[],
    )


@both_prefixes(router, "POST", "/assistant/conversation/list")
async def conversation_list(body: ConversationQuery, request: Request, principal: Caller) -> Response:
    records, total = await conversations(request).page(
        principal.account_id, body.assistant_id, body.page, body.page_size
    )
    listed = [
        ConversationUsage(
            id=r.id,
            assistant_id=r.assistant_id,
            create_time=int(r.created_at.timestamp()),
            update_time=int(r.updated_at.timestamp()),
            usage=usage_of(r),
        )
        for r in records
    ]
    has_more = body.page * body.page_size < total
    data = ConversationUsageList(assistant_id=body.assistant_id, has_more=has_more, conversation_list=listed)
    return json_response(ConversationUsageResponse(data=data))


def usage_of(record: ConversationRecord) -> Usage:
    total = record.prompt_tokens + record.completion_tokens
    return Usage(prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens, total_tokens=total)


def conversation_out(record: ConversationRecord) -> ConversationOut:
    return ConversationOut(
        id=record.id,
        assistant_id=record.assistant_id,
        title=record.title,
        agent_version=record.agent_version,
        created_at=int(record.created_at.timestamp()),
        updated_at=int(record.updated_at.timestamp()),
        usage=usage_of(record),
    )


def message_out(message: StoredMessage) -> ConversationMessageOut:
    calls = [StoredToolCall.model_validate(c) for c in message.tool_calls] if message.tool_calls else None
    return ConversationMessageOut(
        role=message.role,
        content=message.content,
        tool_calls=calls,
        attachments=message.attachments,
        created_at=int(message.created_at.timestamp()),
    )


@both_prefixes(router, "GET", "/assistant/conversations")
async def list_conversations(
    request: Request,
    principal: Caller,
    assistant_id: str | None = Query(default=None, max_length=200),
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=20, ge=1, le=100),
) -> Response:
    records, total = await conversations(request).page(principal.account_id, assistant_id, page, size)
    # Nulls kept: a conversation's ``agent_version`` and a message's ``tool_calls`` are null, not missing.
    return json_response(ConversationPage(data=[conversation_out(r) for r in records], total=total), nulls=True)


@both_prefixes(router, "GET", "/assistant/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, request: Request, principal: Caller) -> Response:
    store = conversations(request)
    record = await store.get(principal.account_id, conversation_id)
    messages = await store.messages(principal.account_id, conversation_id)
    detail = ConversationDetail(**conversation_out(record).model_dump(), messages=[message_out(m) for m in messages])
    return json_response(detail, nulls=True)


@both_prefixes(router, "DELETE", "/assistant/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, request: Request, principal: Caller) -> Response:
    await conversations(request).delete(principal.account_id, conversation_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")
