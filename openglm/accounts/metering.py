"""Admission and metering: limits and balance before the engine is touched; one usage record and one ledger
entry after the call, for what was delivered.

    call = await meter.admit(principal, spec, "chat.completions")   # may raise 1113 / 1302 / 1303 / 1304
    ...generate; call.tally counts tokens as they reach the client...
    await call.settle("succeeded")        # or call.abandon() when the call failed before generating
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..catalog import PricedModel, Prices
from ..errors import InsufficientBalanceError, OpenGLMError, ServiceUnavailableError
from ..serving.usage import Tally
from ..store.db import Database
from ..store.models import UsageRecord
from ..store.types import utcnow
from . import ledger
from .auth import Principal
from .limits import Lease, Limiter
from .money import cost_of, format_yuan, to_nano

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUSES = ("succeeded", "cancelled", "failed")
RECORD_ATTEMPTS = 4


@dataclass(frozen=True)
class PriceBook:
    """A model's prices in nano-yuan."""

    input_per_1k: int
    output_per_1k: int
    per_image: int

    @classmethod
    def of(cls, prices: Prices) -> PriceBook:
        return cls(to_nano(prices.input), to_nano(prices.output), to_nano(prices.image))

    @property
    def free(self) -> bool:
        return not (self.input_per_1k or self.output_per_1k or self.per_image)

    def cost(self, tally: Tally) -> int:
        return (
            cost_of(tally.prompt_tokens, self.input_per_1k)
            + cost_of(tally.completion_tokens, self.output_per_1k)
            + tally.images * self.per_image
        )


@dataclass(frozen=True)
class Attribution:
    """A call made through an agent (a GLM): the agent and its creator's account."""

    agent_id: str
    owner: str


class Meter:
    def __init__(self, db: Database, limiter: Limiter, creator_share: Decimal = Decimal(0)):
        self.db = db
        self.limiter = limiter
        self.creator_share = creator_share  # the fraction of a charge through an agent credited to its creator
        self._settling: set[asyncio.Task[None]] = set()

    async def admit(
        self, principal: Principal, spec: PricedModel, endpoint: str, *, nested: bool = False
    ) -> MeteredCall:
        """``nested``: a call made inside one already admitted (a tool's picture in an agent request), which
        checks the balance but takes no second concurrency slot or request of the key's limits."""
        prices = PriceBook.of(spec.effective_prices())
        if principal.key_id is not None and not prices.free:
            await self._check_balance(principal.account_id)
        lease = await self._take_limits(principal) if principal.key_id and not nested else None
        return MeteredCall(self, principal, spec.id, endpoint, prices, lease)

    async def _take_limits(self, principal: Principal) -> Lease:
        assert principal.key_id is not None
        try:
            return await self.limiter.admit(principal.key_id, principal.limits)
        except OpenGLMError:
            raise
        except Exception as exc:  # Redis down or unreachable: say so, and let the SDK retry later
            log.warning("limiter unavailable: %s", exc)
            raise ServiceUnavailableError("the limits store is unavailable; retry shortly") from None

    async def _check_balance(self, account_id: str) -> None:
        balance = await ledger.fetch_balance(self.db, account_id)
        if balance <= 0:
            raise InsufficientBalanceError(
                f"您的账户已欠费，请充值后重试。 (account balance is {format_yuan(balance)} CNY; top up to continue)"
            )

    def spawn_settlement(self, call: MeteredCall, status: str) -> asyncio.Task[None] | None:
        """Settle in a task of its own, so that a cancelled request (client gone) still writes its record.
        The first status claimed for a call wins; later ones return None."""
        if call.claimed:
            return None
        call.claimed = True
        task = asyncio.create_task(call.settle(status))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return task

    async def drain(self) -> None:
        """Wait for settlements in flight (at shutdown)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)


@dataclass
class MeteredCall:
    meter: Meter
    principal: Principal
    model: str
    endpoint: str
    prices: PriceBook
    lease: Lease | None
    tally: Tally = field(default_factory=Tally)
    usage_id: str | None = None
    request_id: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    agent: Attribution | None = None
    claimed: bool = False  # a settlement has been started
    _done: bool = False

    def bind(self, usage_id: str, request_id: str | None) -> None:
        """The response id (the usage record's id) and the caller's request id, known once planning is done."""
        self.usage_id, self.request_id = usage_id, request_id

    def close(self) -> None:
        """The backstop when a response is over: a stream the server never started reading (the client left
        first) has not settled itself, so settle it as cancelled. A no-op for every call that did."""
        self.meter.spawn_settlement(self, "cancelled")

    async def guard(self, start: Awaitable[T]) -> T:
        """Await the step that submits to the engine; if it fails, the call is abandoned uncharged."""
        try:
            return await start
        except BaseException:
            await self.abandon()
            raise

    async def abandon(self) -> None:
        """The call failed before generating: nothing is charged, nothing recorded."""
        if not self._done:
            self._done = True
            await self._release()

    async def settle(self, status: str) -> None:
        """Record and charge what was delivered. A call that failed before delivering anything is not charged."""
        if status == "failed" and not self.tally.delivered_anything:
            await self.abandon()
            return
        if self._done:
            return
        self._done = True
        try:
            if self.usage_id is None:
                raise RuntimeError("a metered call was settled before bind()")
            await self._record_with_retries(status)
            if self.principal.key_id is not None:
                tokens = self.tally.prompt_tokens + self.tally.completion_tokens
                await self.meter.limiter.add_tokens(self.principal.key_id, tokens)
        except Exception:
            # The answer has been delivered; nothing is left to refuse. Log the whole record, so that an
            # operator can enter it by hand, and loudly.
            log.exception(
                "USAGE NOT RECORDED id=%s account=%s key=%s model=%s %s status=%s cost=%s",
                self.usage_id,
                self.principal.account_id,
                self.principal.key_id,
                self.model,
                self.tally,
                status,
                self.prices.cost(self.tally),
            )
        finally:
            await self._release()

    async def _record_with_retries(self, status: str) -> None:
        """A brief database hiccup must not lose a record: retry, and count a duplicate key as done (the
        attempt that raised may have committed)."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self._record(status)
                return
            except IntegrityError:
                if attempt == 0:
                    raise  # the first attempt cannot have committed before: a real conflict
                return
            except DBAPIError:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)

    def creator_share(self, cost: int) -> int:
        """What the agent's creator is credited for this call (nano-yuan): nothing for their own calls."""
        if self.agent is None or self.agent.owner == self.principal.account_id:
            return 0
        return int(Decimal(cost) * self.meter.creator_share)

    async def _record(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown usage status {status!r}")
        cost = self.prices.cost(self.tally)
        share = self.creator_share(cost)
        assert self.usage_id is not None
        # Runs for every call: two Core INSERTs in one transaction, no ORM unit of work.
        async with self.meter.db.writing() as connection:
            await connection.execute(
                insert(UsageRecord).values(
                    id=self.usage_id,
                    request_id=self.request_id,
                    account_id=self.principal.account_id,
                    key_id=self.principal.key_id,
                    model=self.model,
                    endpoint=self.endpoint,
                    prompt_tokens=self.tally.prompt_tokens,
                    completion_tokens=self.tally.completion_tokens,
                    images=self.tally.images,
                    cost=cost,
                    status=status,
                    started_at=self.started_at,
                    created_at=utcnow(),
                    agent_id=self.agent.agent_id if self.agent else None,
                    agent_owner=self.agent.owner if self.agent else None,
                    agent_share=share if self.agent else None,
                )
            )
            await ledger.append(
                connection, self.principal.account_id, "charge", -cost, usage_id=self.usage_id, note=self.endpoint
            )
            if share > 0:
                assert self.agent is not None
                note = f"share of {self.usage_id} through agent {self.agent.agent_id}"
                await ledger.append(connection, self.agent.owner, "share", share, note=note)

    async def _release(self) -> None:
        if self.lease is None:
            return
        try:
            await self.lease.release()
        except Exception:  # the slot expires by itself (Redis leases have a TTL); the answer stands
            log.warning("could not give back the concurrency slot of key %s", self.principal.key_id, exc_info=True)


async def metered_stream(call: MeteredCall, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """Pass chunks through; when the stream ends for any reason, settle what the client took."""
    status = "cancelled"  # unless it runs to the end or fails: the client went away
    try:
        async for chunk in chunks:
            yield chunk
        status = "succeeded"
    except Exception:
        status = "failed"
        raise
    finally:
        await _settle(call, status)


async def metered_result(call: MeteredCall, work: Awaitable[T]) -> T:
    status = "cancelled"
    try:
        result = await work
        status = "succeeded"
        return result
    except Exception:
        status = "failed"
        raise
    finally:
        await _settle(call, status)


async def _settle(call: MeteredCall, status: str) -> None:
    """Settle in a task of its own. A call that ended normally waits for its record, so a client that has the
    whole answer can already see its usage; a cancelled one (the client went away) does not wait, because its
    cancel scope would cancel the wait, but the task still writes the record."""
    task = call.meter.spawn_settlement(call, status)
    if task is not None and status != "cancelled":
        await asyncio.shield(task)
