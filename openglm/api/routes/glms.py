"""GLMs under both prefixes: create, edit (each edit a version), share, list in the agent center."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.money import format_yuan
from ...accounts.usage import agent_tokens, agent_usage
from ...glms.store import AgentRecord
from ...protocol.common import MAX_PAGE
from ...protocol.glms import (
    AgentCreate,
    AgentEdit,
    AgentOut,
    AgentPage,
    AgentUsage,
    AgentUsageDay,
    AgentVersionOut,
    AgentVersions,
    BuilderRequest,
)
from ..deps import Caller, Runs
from ..deps import glms as store
from ..deps import platform as _platform
from ._common import both_prefixes, json_response, respond

router = APIRouter(tags=["glms"])


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
async def create_agent(body: AgentCreate, request: Request, principal: Caller, runs: Runs) -> Response:
    config = await runs.targets.checked_config(principal.account_id, body.config)
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
async def build_by_conversation(body: BuilderRequest, request: Request, principal: Caller, runs: Runs) -> Response:
    """One turn of the builder chat: the conversation and the current draft in, a reply and the new draft out."""
    return await respond(request, await runs.build(principal, body))


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
async def edit_agent(agent_id: str, body: AgentEdit, request: Request, principal: Caller, runs: Runs) -> Response:
    config = None if body.config is None else await runs.targets.checked_config(principal.account_id, body.config)
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
    db = _platform(request).db
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
