from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...accounts.metering import metered_result, metered_stream
from ...protocol.chat import CompletionRequest
from ...serving.completions import collect_completion, completion_chunks, plan_completion, start_completion
from ..deps import Caller
from ..sse import sse_response
from ._common import closer, fine_tuned_target, until_disconnect

router = APIRouter(tags=["completions"])


@router.post("/v1/completions")
@router.post("/api/paas/v4/completions")
async def completions(body: CompletionRequest, request: Request, principal: Caller) -> Response:
    adapter = await fine_tuned_target(request, principal, body.model)
    pool = request.app.state.models
    served = pool.get(body.model) if adapter is None else await pool.for_fine_tuned(adapter)
    # The key's limits and the balance before planning (a grammar compile); the reservation needs the plan.
    call = await request.app.state.platform.meter.enter(principal, served.spec, "completions")
    plan = await call.guard(plan_completion(served, body, request.app.state.chat.grammars))
    await call.hold(plan.usage_bound())
    call.bind(plan.id, body.request_id)
    run = await call.guard(start_completion(served, plan))
    call.tally.prompt_tokens = run.prompt_tokens()
    if body.stream:
        stream = metered_stream(call, completion_chunks(run, call.tally))
        return sse_response(stream, on_close=closer(run, call))
    return await until_disconnect(request, metered_result(call, collect_completion(run, call.tally)))
