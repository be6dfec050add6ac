"""The assistant API (both prefixes): ``POST /assistant`` (a turn of a stored conversation, streamed),
``/assistant/list``, ``/assistant/conversation/list``, and OpenGLM's own conversation endpoints for the web app."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...glms.conversations import ConversationRecord, StoredMessage
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
    SuggestQuery,
    SupportList,
    SupportQuery,
)
from ...protocol.chat import Usage
from ...protocol.common import MAX_PAGE
from ...runs.service import RunService
from ..deps import Caller, Runs, conversations
from ..deps import agents as _agents
from ..deps import glms as _glms
from ._common import both_prefixes, json_response, respond

router = APIRouter(tags=["assistant"])
CENTER_PAGE = 100


@both_prefixes(router, "POST", "/assistant")
async def assistant_conversation(body: AssistantRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.assistant.turn(principal, body, str(request.base_url)))


@both_prefixes(router, "POST", "/assistant/conversation/suggest")
async def suggest(body: SuggestQuery, request: Request, principal: Caller, runs: Runs) -> Response:
    return await respond(request, await runs.assistant.suggest(principal, body))  # a client gone: cancelled


@both_prefixes(router, "POST", "/assistant/list")
async def assistant_list(body: SupportQuery, request: Request, principal: Caller, runs: Runs) -> Response:
    wanted = list(dict.fromkeys(body.assistant_id_list or []))
    if not wanted:
        wanted = list(_agents(request).catalog.agents)
        glms: AgentStore = _glms(request)
        mine, _ = await glms.mine(principal.account_id, 1, CENTER_PAGE)
        listed, _ = await glms.center(None, 1, CENTER_PAGE)
        wanted += [a.id for a in [*mine, *listed] if a.id not in wanted]
    data = []
    for assistant_id in wanted:
        glm = None
        if runs.targets.catalog_agent(assistant_id) is None:
            glm = await runs.targets.glm(principal.account_id, assistant_id)
            if glm is None:
                continue
        data.append(support_of(request, runs, assistant_id, glm))
    return json_response(SupportList(data=data))


def support_of(request: Request, runs: RunService, assistant_id: str, glm: AgentRecord | None) -> AssistantSupport:
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
    spec = _agents(request).spec(assistant_id)
    started = int(request.app.state.started_at)
    tools = [tool.type for tool in runs.assistant.catalog_tools() or []]
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
