"""GLMs under both prefixes: create, edit (each edit a version), share, list in the agent center."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result
from ...accounts.money import format_yuan
from ...accounts.usage import agent_tokens, agent_usage
from ...agent.tools.http_api import load_document_isolated, operations
from ...errors import InvalidFieldError, NotFoundError
from ...glms.builder import BuilderTurn, Draft, builder_tools, chat_request, merge, parse_output
from ...glms.store import AgentRecord, AgentStore
from ...protocol.common import MAX_PAGE
from ...protocol.glms import (
    AgentConfig,
    AgentCreate,
    AgentEdit,
    AgentOut,
    AgentPage,
    AgentUsage,
    AgentUsageDay,
    AgentVersionOut,
    AgentVersions,
    BuilderDraft,
    BuilderReply,
    BuilderRequest,
)
from ...serving.responses import collect_chat
from ..deps import Caller
from ._common import (
    admit,
    both_prefixes,
    fine_tuned_target,
    json_response,
    served_model,
    until_disconnect,
    usable_model,
)

router = APIRouter(tags=["glms"])


def store(request: Request) -> AgentStore:
    agents: AgentStore = request.app.state.glms
    return agents


async def checked(request: Request, account_id: str, config: AgentConfig) -> AgentConfig:
    """A configuration this server can run for this account: its model (a served chat model or one of the account's
    fine-tuned models; else 1211), tools and knowledge bases exist."""
    await usable_model(request, account_id, config.model)
    offered = request.app.state.agents.tools
    missing = [tool for tool in config.tools if tool not in offered]
    if missing:
        raise InvalidFieldError(
            f"config.tools: {', '.join(missing)} not available here; available: {', '.join(offered)}"
        )
    if "retrieval" in config.tools and not config.knowledge_ids:
        raise InvalidFieldError("config.knowledge_ids: the retrieval tool needs at least one knowledge base")
    for api in config.http_apis:  # a document that does not describe operations is refused now, not in a chat
        operations(
            await load_document_isolated(api.openapi),
            base_url=api.base_url,
            auth=api.auth,
            fetcher=request.app.state.agents.user_http_fetcher,
        )
    for knowledge_id in config.knowledge_ids:
        try:
            await request.app.state.knowledge.store.get(account_id, knowledge_id)
        except NotFoundError:
            raise InvalidFieldError(
                f"config.knowledge_ids: no knowledge base {knowledge_id!r} in your account"
            ) from None
    return config


def agent_out(record: AgentRecord, viewer: str) -> AgentOut:
    mine = record.account_id == viewer
    return AgentOut(
        id=record.id,
        name=record.name,
        description=record.description,
        avatar=record.avatar,
        visibility=record.visibility,
        version=record.version,
        uses=record.uses,
        recommended=record.recommended,
        mine=mine,
        config=record.config if mine else None,
        starter_prompts=record.config.starter_prompts,
        tools=list(record.config.tools),
        created_at=int(record.created_at.timestamp()),
        updated_at=int(record.updated_at.timestamp()),
    )


@both_prefixes(router, "POST", "/glms")
async def create_agent(body: AgentCreate, request: Request, principal: Caller) -> Response:
    config = await checked(request, principal.account_id, body.config)
    record = await store(request).create(
        principal.account_id,
        config,
        user_id=principal.user_id,
        name=body.name,
        description=body.description,
        avatar=body.avatar,
        visibility=body.visibility,
    )
    return json_response(agent_out(record, principal.account_id))


@both_prefixes(router, "POST", "/glms/builder")
async def build_by_conversation(body: BuilderRequest, request: Request, principal: Caller) -> Response:
    """One turn of the builder chat: the conversation and the current draft in, a reply and the new draft out."""
    draft = None if body.draft is None else Draft(**body.draft.model_dump(exclude={"config"}), config=body.draft.config)
    if draft is not None:
        await checked(request, principal.account_id, draft.config)
    chat, models = request.app.state.chat, request.app.state.models
    name = body.model or models.default_name()
    adapter = await fine_tuned_target(request, principal, name)  # the caller's fine-tuned models build too
    served = served_model(request, name, adapter)
    tools = builder_tools(list(request.app.state.agents.tools), None if draft is None else draft.config)
    turns = [BuilderTurn(m.role, m.content) for m in body.messages]
    plan = await chat.plan(chat_request(served.spec.id, turns, draft, tools), adapter)
    call = await admit(request, principal, plan.served, "glms.builder", plan.id, plan.request_id, plan.usage_bound())
    run = await call.guard(chat.submit(plan))
    call.tally.prompt_tokens = run.prompt_tokens

    async def answer() -> BuilderReply:
        choice = (await collect_chat(chat, run, call.tally)).choices[0]
        output = parse_output(choice.message.content, choice.finish_reason)
        reply, new = merge(draft, output, model=served.spec.id, tools=tools)
        return BuilderReply(reply=reply, draft=BuilderDraft.model_validate(vars(new)))

    return await until_disconnect(request, metered_result(call, answer()))


@both_prefixes(router, "GET", "/glms")
async def my_agents(
    request: Request,
    principal: Caller,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=20, ge=1, le=100),
) -> Response:
    records, total = await store(request).mine(principal.account_id, page, size)
    return json_response(AgentPage(data=[agent_out(r, principal.account_id) for r in records], total=total))


@both_prefixes(router, "GET", "/glms/center")
async def agent_center(
    request: Request,
    principal: Caller,
    q: str | None = Query(default=None, max_length=100),
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=20, ge=1, le=100),
) -> Response:
    records, total = await store(request).center(q, page, size)
    return json_response(AgentPage(data=[agent_out(r, principal.account_id) for r in records], total=total))


@both_prefixes(router, "GET", "/glms/{agent_id}")
async def get_agent(agent_id: str, request: Request, principal: Caller) -> Response:
    return json_response(agent_out(await store(request).get(principal.account_id, agent_id), principal.account_id))


@both_prefixes(router, "PUT", "/glms/{agent_id}")
async def edit_agent(agent_id: str, body: AgentEdit, request: Request, principal: Caller) -> Response:
    config = None if body.config is None else await checked(request, principal.account_id, body.config)
    details = body.model_dump(exclude_none=True, exclude={"config"})
    record = await store(request).update(principal.account_id, agent_id, config, **details)
    return json_response(agent_out(record, principal.account_id))


@both_prefixes(router, "GET", "/glms/{agent_id}/versions")
async def agent_versions(agent_id: str, request: Request, principal: Caller) -> Response:
    versions = await store(request).versions(principal.account_id, agent_id)
    data = [
        AgentVersionOut(version=v.version, config=v.config, created_at=int(v.created_at.timestamp())) for v in versions
    ]
    return json_response(AgentVersions(data=data))


@both_prefixes(router, "GET", "/glms/{agent_id}/usage")
async def agent_usage_report(agent_id: str, request: Request, principal: Caller) -> Response:
    """The creator's view of the calls made through their agent (anyone's), and what they earned."""
    await store(request).owned(principal.account_id, agent_id)
    db = request.app.state.platform.db
    days = await agent_usage(db, agent_id)
    prompt, completion = await agent_tokens(db, agent_id)
    by_day = [
        AgentUsageDay(
            day=d.day, calls=d.calls, tokens=d.tokens, cost=format_yuan(d.cost), earnings=format_yuan(d.earnings)
        )
        for d in days
    ]
    report = AgentUsage(
        calls=sum(d.calls for d in days),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=format_yuan(sum(d.cost for d in days)),
        earnings=format_yuan(sum(d.earnings for d in days)),
        by_day=by_day,
    )
    return json_response(report)


@both_prefixes(router, "DELETE", "/glms/{agent_id}")
async def delete_agent(agent_id: str, request: Request, principal: Caller) -> Response:
    await store(request).delete(principal.account_id, agent_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")
