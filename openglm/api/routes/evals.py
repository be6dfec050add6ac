"""Eval runs through the API (an OpenGLM extension; Zhipu and OpenAI have no such call), under both prefixes: the
suites this server has, starting a run (a job that runs the suites through this server's own API as the caller's
account), the account's runs, one run with its report, and cancelling it. Parse, call ``EvalService``, answer."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...evals.runs import RunRequest
from ...protocol.evals import Cursor, EvalRunCreate, EvalRunList, EvalSuiteList
from ..deps import Caller
from ..deps import evals as service
from ..eval_views import run_object, suite_object
from ._common import both_prefixes, json_response

router = APIRouter(tags=["evals"])


@both_prefixes(router, "GET", "/evals/suites")
async def list_suites(request: Request, principal: Caller) -> Response:
    return json_response(EvalSuiteList(data=[suite_object(suite) for suite in await service(request).suites()]))


@both_prefixes(router, "POST", "/evals/runs")
async def start_run(body: EvalRunCreate, request: Request, principal: Caller) -> Response:
    asked = RunRequest(body.suites, body.models, body.split, body.per_family, body.seed)
    return json_response(run_object(await service(request).start(principal, asked)), nulls=True)


@both_prefixes(router, "GET", "/evals/runs")
async def list_runs(
    request: Request, principal: Caller, after: Cursor | None = None, limit: int = Query(default=20, ge=1, le=100)
) -> Response:
    runs, more = await service(request).list_runs(principal, limit=limit, after=after)
    return json_response(EvalRunList(data=[run_object(run) for run in runs], has_more=more), nulls=True)


@both_prefixes(router, "GET", "/evals/runs/{run_id}")
async def get_run(run_id: str, request: Request, principal: Caller) -> Response:
    return json_response(run_object(await service(request).get(principal, run_id), results=True), nulls=True)


@both_prefixes(router, "POST", "/evals/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request, principal: Caller) -> Response:
    return json_response(run_object(await service(request).cancel(principal, run_id)), nulls=True)
