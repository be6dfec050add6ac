"""The one place a billable run is admitted, bound, guarded, tallied and settled (``accounts.metering`` keeps the
ledger; this module is the sequence every caller used to write out itself):

    enter (the key's limits, the balance) → plan, guarded → hold (reserve the plan's bound) → bind (the usage id)
    → submit, guarded → tally the prompt → stream or collect → settle (or abandon, when it failed before any output)

A failure anywhere before output abandons the call (nothing charged, its slot and reservation given back); once
output flows, ``metered_stream`` / ``metered_result`` settle what was delivered, whatever ends it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..accounts.auth import Principal
from ..accounts.metering import Attribution, Meter, MeteredCall, metered_result, metered_stream
from ..catalog import PricedModel
from ..serving.usage import UsageBound, new_usage_id
from .outcome import Collected, Streamed

T = TypeVar("T")


class Plan(Protocol):
    """A planned engine call: its response id and the most it can be billed for."""

    @property
    def id(self) -> str: ...

    def usage_bound(self) -> UsageBound: ...


class Run(Protocol):
    @property
    def prompt_tokens(self) -> int: ...

    def cancel(self) -> None: ...


P = TypeVar("P", bound=Plan)
R = TypeVar("R", bound=Run)


@dataclass
class Started(Generic[P, R]):
    """An engine run admitted and submitted: its metered call, plan and run."""

    call: MeteredCall
    plan: P
    run: R

    def stream(self, chunks: AsyncIterator[T]) -> Streamed[T]:
        def close() -> None:
            self.run.cancel()
            self.call.close()

        return Streamed(metered_stream(self.call, chunks), close)

    def collect(self, work: Awaitable[T]) -> Collected[T]:
        return Collected(metered_result(self.call, work))


class Metering:
    """Admission and settlement for the runs of one meter."""

    def __init__(self, meter: Meter):
        self.meter = meter

    async def engine_run(
        self,
        principal: Principal,
        spec: PricedModel,
        endpoint: str,
        plan: Callable[[], Awaitable[P]],
        submit: Callable[[P], Awaitable[R]],
        *,
        request_id: Callable[[P], str | None] | None = None,
        attribution: Attribution | None = None,
    ) -> Started[P, R]:
        """A call to an engine: the key's limits and the balance before planning (so a key over its limits cannot
        make the server render templates or compile grammars), the plan's bound reserved after it, then the
        submission. ``request_id``: the caller's request id as the plan knows it (default: the plan's id)."""
        call = await self.meter.enter(principal, spec, endpoint)
        call.agent = attribution
        planned = await call.guard(plan())
        await call.hold(planned.usage_bound())
        call.bind(planned.id, planned.id if request_id is None else request_id(planned))
        run = await call.guard(submit(planned))
        call.tally.prompt_tokens = run.prompt_tokens
        return Started(call, planned, run)

    async def admit(
        self,
        principal: Principal,
        spec: PricedModel,
        endpoint: str,
        bound: UsageBound,
        *,
        usage_id: str | None = None,
        kind: str = "call",
        request_id: str | None = None,
        nested: bool = False,
        attribution: Attribution | None = None,
    ) -> MeteredCall:
        """A call whose bound is known up front (embeddings, pictures, retrieval, an agent's first round): limits,
        balance and the reservation; bound to ``usage_id`` or a new id of ``kind``. ``nested``: made inside a call
        already admitted (a tool's picture in an agent run): its own reservation, no second slot of the key's
        limits."""
        call = await self.meter.admit(principal, spec, endpoint, bound=bound, nested=nested)
        call.agent = attribution
        usage_id = usage_id or new_usage_id(kind)
        call.bind(usage_id, request_id or usage_id)
        return call

    async def check_submission(self, principal: Principal, spec: PricedModel, endpoint: str) -> None:
        """Work queued now and run later (an async call, a batch): the key's limits count the submission as one
        request and the balance is checked now (1113 at once, not a failed task); nothing is reserved or charged
        here — the work's own calls are, when they run."""
        call = await self.meter.enter(principal, spec, endpoint)
        await call.abandon()

    @staticmethod
    def collect(call: MeteredCall, work: Coroutine[Any, Any, T]) -> Collected[T]:
        return Collected(metered_result(call, work))

    @staticmethod
    async def result(call: MeteredCall, work: Awaitable[T]) -> T:
        """``work``'s result, the call settled with what it used (abandoned if it failed before using anything)."""
        return await metered_result(call, work)

    @staticmethod
    def stream(call: MeteredCall, chunks: AsyncIterator[T]) -> Streamed[T]:
        return Streamed(metered_stream(call, chunks), call.close)
