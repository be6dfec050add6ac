"""Admission and metering: limits and a reservation of the call's maximum cost before the engine is touched; one
usage record and one ledger entry after the call, for what was delivered, and the reservation given back.

    call = await meter.admit(principal, spec, "chat.completions", bound=plan.usage_bound())  # 1113/1302/1303/1304
    ...generate; call.tally counts tokens as they reach the client...
    await call.settle("succeeded")        # or call.abandon() when the call failed before generating

The reservation (``reservations.py``) is what keeps a burst of calls from spending a balance many times over:
every admission sees what the calls admitted before it may still cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..aio import to_the_end
from ..catalog import PricedModel, Prices
from ..errors import InsufficientBalanceError, OpenGLMError, ServiceUnavailableError
from ..serving.usage import Tally, UsageBound, new_usage_id
from ..store.db import Database
from ..store.types import utcnow
from . import reservations
from .auth import Principal
from .limits import Ancestor, KeyLimits, Lease, Limiter
from .money import cost_of, format_yuan, to_nano
from .recording import UsageEntry, write_usage
from .spool import UsageSpool

log = logging.getLogger(__name__)
T = TypeVar("T")

RECORD_ATTEMPTS = 4
# How long a reservation outlives its last renewal. Live calls renew theirs every third of it, so only a process
# that died (or hung that long) lets one expire; the balance it held is free again that long after.
RESERVATION_TTL_SECONDS = 900.0


class Usage(Protocol):
    """Counts a price applies to: a ``Tally`` (what was delivered) or a ``UsageBound`` (the most there can be)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def images(self) -> int: ...


@dataclass(frozen=True)
class PriceBook:
    """A model's prices in nano-yuan."""

    input_per_1k: int
    output_per_1k: int
    per_image: int

    @classmethod
    def of(cls, prices: Prices, *, batch: bool = False) -> PriceBook:
        """``batch``: the prices a batch line pays (``Prices.for_batches``)."""
        if batch:
            prices = prices.for_batches()
        return cls(to_nano(prices.input), to_nano(prices.output), to_nano(prices.image))

    @property
    def free(self) -> bool:
        return not (self.input_per_1k or self.output_per_1k or self.per_image)

    def cost(self, usage: Usage) -> int:
        """Monotone in every count, so the cost of a bound is at least the cost of anything within it."""
        return (
            cost_of(usage.prompt_tokens, self.input_per_1k)
            + cost_of(usage.completion_tokens, self.output_per_1k)
            + usage.images * self.per_image
        )


@dataclass(frozen=True)
class Attribution:
    """A call made through an agent (a GLM): the agent and its creator's account."""

    agent_id: str
    owner: str


class Meter:
    def __init__(
        self,
        db: Database,
        limiter: Limiter,
        creator_share: Decimal = Decimal(0),
        *,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
        spool: UsageSpool | None = None,
        enforce_balances: bool = True,
    ):
        self.db = db
        # Whether work without a key (``admit_job``) is held to the balance: with authentication off every
        # request acts as the local account without a key, and its calls are not held to it either.
        self.enforce_balances = enforce_balances
        self.spool = spool  # where settlements the database refused are kept until they can be written
        self.lost = 0  # settlements neither the database nor the spool took (only the log has them)
        self.limiter = limiter
        self.creator_share = creator_share  # the fraction of a charge through an agent credited to its creator
        self.reservation_ttl = timedelta(seconds=reservation_ttl)
        self._settling: set[asyncio.Task[None]] = set()
        self._holds: dict[str, reservations.Hold] = {}  # this process's live reservations, renewed while held
        self._renewing: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    async def admit(
        self, principal: Principal, spec: PricedModel, endpoint: str, *, bound: UsageBound, nested: bool = False
    ) -> MeteredCall:
        """Balance, limits, then a reservation of ``bound``'s cost, in that order: a call refused for the balance
        holds nothing, and one refused by the limiter writes nothing. ``nested``: a call made inside one already
        admitted (a tool's picture in an agent request), which reserves its own cost but takes no second
        concurrency slot or request of the key's limits."""
        call = await self.enter(principal, spec, endpoint, nested=nested)
        await call.hold(bound)
        return call

    async def enter(
        self, principal: Principal, spec: PricedModel, endpoint: str, *, nested: bool = False
    ) -> MeteredCall:
        """The first half of ``admit``: the balance and the key's limits, before the request is planned, so a
        key over its limits (or an account with nothing left) cannot make the server render templates or compile
        grammars. The caller then plans under ``call.guard`` and reserves with ``call.hold(bound)``."""
        prices = PriceBook.of(spec.effective_prices(), batch=principal.channel == "batch")
        call = MeteredCall(self, principal, spec.id, endpoint, prices, None)
        call.held_to_balance = principal.key_id is not None and not prices.free
        if call.held_to_balance:
            await self._check_balance(principal.account_id)
        limited = principal.key_id is not None and not nested
        if limited and principal.deferred:  # admitted at submission: only the daily tokens are checked again
            await (await self._take_limits(daily_only(principal))).release()
        call.lease = await self._take_limits(principal) if limited and not principal.deferred else None
        return call

    async def admit_job(self, account_id: str, spec: PricedModel, endpoint: str, *, bound: UsageBound) -> MeteredCall:
        """Work the server does for an account in the background (knowledge ingestion): no key, so no key's
        limits, but the balance checked and ``bound``'s cost reserved before the work starts, as for a call
        (1113 when nothing is left); settled with what it used, abandoned (the hold given back) if it fails."""
        prices = PriceBook.of(spec.effective_prices())
        call = MeteredCall(self, Principal(account_id, None), spec.id, endpoint, prices, None)
        if self.enforce_balances and not prices.free:
            await self._check_balance(account_id)
            await call.guard(call.reserve(bound))
        return call

    async def _take_limits(self, principal: Principal) -> Lease:
        assert principal.key_id is not None
        try:
            return await self.limiter.admit(principal.key_id, principal.limits, principal.lineage)
        except OpenGLMError:
            raise
        except Exception as exc:  # Redis down or unreachable: say so, and let the SDK retry later
            log.warning("limiter unavailable: %s", exc)
            raise ServiceUnavailableError("the limits store is unavailable; retry shortly") from None

    async def _check_balance(self, account_id: str) -> None:
        """The cheap refusal (a read): nothing left to reserve from."""
        standing = await reservations.standing(self.db, account_id)
        if standing.available <= 0 and not await self._swept(account_id):
            raise insufficient_balance(standing)

    async def _swept(self, account_id: str) -> bool:
        """Free the account's expired reservations (a replica that died holding them), if it has any."""
        if not await reservations.has_expired(self.db, account_id):
            return False
        return await reservations.sweep(self.db, account_id) > 0

    async def reserve(self, account_id: str, amount: int) -> reservations.Hold:
        """Hold ``amount`` of the account's balance for a call, or raise 1113."""
        hold = await reservations.reserve(self.db, account_id, amount, self.reservation_ttl)
        if hold is None and await self._swept(account_id):
            hold = await reservations.reserve(self.db, account_id, amount, self.reservation_ttl)
        if hold is None:
            raise insufficient_balance(await reservations.standing(self.db, account_id))
        self._holds[hold.id] = hold
        self._keep_renewing()
        return hold

    def forget(self, holds: list[reservations.Hold]) -> None:
        """Stop renewing holds that were released (or that will expire on their own)."""
        for hold in holds:
            self._holds.pop(hold.id, None)
        if not self._holds:
            self._idle.set()

    def _keep_renewing(self) -> None:
        self._idle.clear()
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew_while_held())

    async def _renew_while_held(self) -> None:
        """While this process holds reservations, push their expiry forward every third of the TTL (and sweep
        whatever other processes left expired). Ends when none is held."""
        period = self.reservation_ttl.total_seconds() / 3
        while self._holds:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=period)
                continue  # released meanwhile: look again
            except TimeoutError:
                pass
            try:
                await reservations.renew(self.db, list(self._holds), self.reservation_ttl)
                await reservations.sweep(self.db)
            except Exception:  # the next round tries again; a hold that expires meanwhile is only swept
                log.warning("could not renew balance reservations", exc_info=True)

    def unrecorded(self, entry: UsageEntry, error: Exception) -> None:
        """A settlement the database would not take, after its retries: spool it for replay, and say so."""
        try:
            if self.spool is None:
                raise RuntimeError("no usage spool is configured")
            self.spool.append(entry)
        except Exception:
            self.lost += 1
            # Nowhere left to keep it: the log line is all an operator has, so it carries the whole record.
            log.critical("USAGE NOT RECORDED %s", json.dumps(entry.to_json()), exc_info=error)
            return
        log.error(
            "USAGE NOT RECORDED in the database (%s: %s); kept in %s for replay: %s cost=%s",
            type(error).__name__,
            error,
            self.spool.path,
            entry.id,
            entry.cost,
        )

    def unrecorded_count(self) -> int:
        """Calls settled but not in the database: waiting in the spool, or lost to it (for /health)."""
        return (self.spool.pending() if self.spool is not None else 0) + self.lost

    async def replay_spool(self) -> None:
        """Write what earlier settlements spooled into the database (at start)."""
        if self.spool is None:
            return
        replayed = await self.spool.replay(self.db)
        if replayed.recorded or replayed.present:
            log.warning(
                "usage spool: %d spooled call(s) recorded now, %d were already recorded",
                replayed.recorded,
                replayed.present,
            )
        if replayed.kept:
            log.error("usage spool: %d call(s) still cannot be recorded (%s)", replayed.kept, self.spool.path)

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
        """Wait for settlements in flight, then stop renewing (at shutdown)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)


def daily_only(principal: Principal) -> Principal:
    """The principal with only the daily-token limits of its key and of every key up its chain."""
    lineage = tuple(Ancestor(a.key_id, KeyLimits(daily_tokens=a.limits.daily_tokens)) for a in principal.lineage)
    return replace(principal, limits=KeyLimits(daily_tokens=principal.limits.daily_tokens), lineage=lineage)


def insufficient_balance(standing: reservations.Standing) -> InsufficientBalanceError:
    held = f"; {format_yuan(standing.reserved)} CNY is held by calls in flight" if standing.reserved > 0 else ""
    return InsufficientBalanceError(
        f"您的账户已欠费，请充值后重试。 (account balance is {format_yuan(standing.balance)} CNY{held}; "
        "top up to continue)"
    )


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
    holds: list[reservations.Hold] = field(default_factory=list)  # what the call holds of the balance
    claimed: bool = False  # a settlement has been started
    held_to_balance: bool = False  # admission reserves its cost (a key's call at a priced model)
    _done: bool = False

    async def reserve(self, bound: UsageBound) -> None:
        """Hold the cost of ``bound`` (admission; an agent before each further round), or raise 1113."""
        amount = self.prices.cost(bound)
        if amount > 0:
            self.holds.append(await self.meter.reserve(self.principal.account_id, amount))

    async def reserve_round(self, bound: UsageBound) -> None:
        """An agent's further round: held to the balance as its admission was. A call admitted without a hold (no
        key: authentication off, where every request is the local account's; a free model) is not refused
        mid-run for a balance it was never held to."""
        if self.held_to_balance:
            await self.reserve(bound)

    async def hold(self, bound: UsageBound) -> None:
        """Admission's reservation of ``bound``'s cost (a call held to the balance), abandoning the call if
        refused (1113)."""
        if self.held_to_balance:
            await self.guard(self.reserve(bound))

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
            await self._give_back_holds()
            await self._release()

    async def settle(self, status: str) -> None:
        """Record and charge what was delivered. A call that failed is charged for every token its engine
        produced (its prompt and the completion made so far), delivered or not; one that failed before producing
        anything is not charged."""
        if status == "failed":
            self.tally.completion_tokens = max(self.tally.completion_tokens, self.tally.generated)
            if not self.tally.delivered_anything:
                await self.abandon()
                return
        if self._done:
            return
        self._done = True
        try:
            entry = self._entry(status)
            try:
                await self._record_with_retries(entry)
            except Exception as exc:
                await self._give_back_holds()
                self.meter.unrecorded(entry, exc)
            await self._count_tokens()
        finally:
            self.meter.forget(self.holds)
            await self._release()

    async def record_in(self, connection: AsyncConnection, status: str = "succeeded") -> UsageEntry:
        """Settle inside the caller's transaction, for work whose charge must commit with its result or not at
        all (a document's chunks): the reservation released and the record and its charge written on
        ``connection``. After the caller commits, ``recorded()``; if it rolls back, ``abandon()``."""
        entry = self._entry(status)
        for hold in self.holds:
            await reservations.release(connection, hold)
        await write_usage(connection, entry)
        return entry

    async def recorded(self) -> None:
        """The transaction ``record_in`` wrote in committed: the call is settled."""
        if self._done:
            return
        self._done = True
        self.meter.forget(self.holds)
        await self._count_tokens()
        await self._release()

    def _entry(self, status: str) -> UsageEntry:
        if self.usage_id is None:  # a bug in the caller; the charge must not be lost for it
            self.usage_id = new_usage_id("unbound")
            log.error("a metered call was settled before bind(); recorded as %s", self.usage_id)
        cost = self.prices.cost(self.tally)
        return UsageEntry(
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
            agent_share=self.creator_share(cost) if self.agent else None,
        )

    async def _count_tokens(self) -> None:
        if self.principal.key_id is None:
            return
        tokens = self.tally.prompt_tokens + self.tally.completion_tokens
        try:
            await self.meter.limiter.add_tokens(self.principal.key_id, tokens, self.principal.lineage)
        except Exception:  # the record stands; only today's count for the daily limit is short
            log.warning("could not count %d tokens of key %s for today", tokens, self.principal.key_id, exc_info=True)

    async def _record_with_retries(self, entry: UsageEntry) -> None:
        """A brief database hiccup must not lose a record: retry, and count a duplicate key as done (the
        attempt that raised may have committed)."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self._record(entry)
                return
            except IntegrityError:
                if attempt == 0:
                    raise  # the first attempt cannot have committed before: a real conflict
                return
            except DataError:
                raise  # a value the column cannot hold fails the same way every time: spooled at once
            except DBAPIError:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)

    def creator_share(self, cost: int) -> int:
        """What the agent's creator is credited for this call (nano-yuan): nothing for their own calls."""
        if self.agent is None or self.agent.owner == self.principal.account_id:
            return 0
        return int(Decimal(cost) * self.meter.creator_share)

    async def _record(self, entry: UsageEntry) -> None:
        # Runs for every call: the reservation given back, two Core INSERTs, in one transaction, no ORM.
        async with self.meter.db.writing() as connection:
            # First: the same row order as a sweep (reservation, then the account's balance row).
            for hold in self.holds:
                await reservations.release(connection, hold)
            await write_usage(connection, entry)

    async def _give_back_holds(self) -> None:
        try:
            await reservations.release_now(self.meter.db, self.holds)
        except Exception:  # unrenewed, they expire and are swept; until then they only hold the balance
            log.warning("could not give back the reservations of %s", self.usage_id, exc_info=True)
        self.meter.forget(self.holds)

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
    cancel scope would cancel the wait, but the task still writes the record.

    A cancel that comes while a whole answer's record is written is dropped: the answer is billed, so it is handed
    back to whoever asked (a batch line keeps it; raising here instead lost it, and the line ran and was billed
    again)."""
    task = call.meter.spawn_settlement(call, status)
    if task is not None and status != "cancelled":
        _, cancelled = await to_the_end(task)
        current = asyncio.current_task()
        if cancelled and current is not None:
            current.uncancel()
