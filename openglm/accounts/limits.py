"""Per-API-key limits: concurrent requests, requests per minute, tokens per UTC day.

``Limiter.admit`` runs before a request reaches an engine and either returns a
``Lease`` (released when the request is settled) or raises the Zhipu error for
the first limit that is hit, checked in this order:

    daily tokens         DailyQuotaError        1304
    requests per minute  FrequencyLimitError    1303  (retry_after set)
    concurrency          ConcurrencyLimitError  1302

A rejected request takes nothing: it is not counted in the minute window and
holds no lease. Tokens are counted after the fact (``add_tokens``), so one
request may overshoot the daily quota; the next one is refused.

A key made with another key (the console, called with a key) is bounded by every
key up its chain, its **lineage**: a request is checked against each ancestor's
limits as well as its own, takes a slot and a place in the minute window of each,
and its tokens count against each. An ancestor's counters therefore hold what its
whole family used, so a key whose day is spent cannot mint a fresh allowance.

Two backends share the interface: ``memory`` for a single gateway process and
``redis`` for several replicas that must share one set of counters.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openglm.errors import ConcurrencyLimitError, DailyQuotaError, FrequencyLimitError
from openglm.registry import Registry

Clock = Callable[[], float]

RPM_WINDOW_SECONDS = 60.0
DEFAULT_LEASE_TTL_SECONDS = 900.0
# A day's counter outlives its day so a late add_tokens or a clock slightly
# behind the other replicas still lands in a live key.
TOKEN_COUNTER_TTL_SECONDS = 2 * 86400

ZHIPU_CONCURRENCY_MESSAGE = "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。"


@dataclass(frozen=True)
class KeyLimits:
    """The limits of one API key; ``None`` means unlimited."""

    concurrency: int | None = None
    rpm: int | None = None
    daily_tokens: int | None = None


@dataclass(frozen=True)
class Ancestor:
    """A key up the chain a key was made from, with its limits (the server defaults filled in)."""

    key_id: str
    limits: KeyLimits


Lineage = Sequence[Ancestor]  # root first


def family(key_id: str, limits: KeyLimits, lineage: Lineage) -> list[Ancestor]:
    """Every key whose limits a request of ``key_id`` is checked against: its lineage, root first, then itself."""
    return [*lineage, Ancestor(key_id, limits)]


class Lease(abc.ABC):
    """One admitted request's hold on a concurrency slot."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the slot back; calling it again is a no-op."""


class Limiter(abc.ABC):
    """Admits requests against a key's limits and counts the tokens they used."""

    @abc.abstractmethod
    async def admit(self, key_id: str, limits: KeyLimits, lineage: Lineage = ()) -> Lease:
        """Take a slot for one request of the key and of every ancestor, or raise the error of the first limit
        hit (daily tokens of the whole family first, then the minute windows, then concurrency)."""

    @abc.abstractmethod
    async def add_tokens(self, key_id: str, tokens: int, lineage: Lineage = ()) -> None:
        """Count a settled request's prompt + completion tokens against today, for the key and its ancestors."""

    @abc.abstractmethod
    async def tokens_today(self, key_id: str, root: str | None = None) -> int:
        """Tokens the key (and the keys made from it) used in the current UTC day. ``root``: the first key of its
        lineage, if it has one."""

    @abc.abstractmethod
    async def in_flight(self, key_id: str, root: str | None = None) -> int:
        """Leases the key (and the keys made from it) hold now."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def utc_day(timestamp: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(timestamp))


def whose(holder: str | None) -> str:
    """Which key a limit belongs to, for the message: the caller's own, or one it was made from."""
    if holder is None:
        return "this API key"
    return f"API key {holder}, which this key was made from (keys made from a key share its limits)"


def daily_quota_error(limit: int, used: int, holder: str | None = None) -> DailyQuotaError:
    return DailyQuotaError(
        f"Daily token quota exceeded for {whose(holder)}: {used} of {limit} tokens used today; it resets at 00:00 UTC."
    )


def frequency_limit_error(rpm: int, retry_after: float, holder: str | None = None) -> FrequencyLimitError:
    err = FrequencyLimitError(
        f"Rate limit exceeded for {whose(holder)}: at most {rpm} requests per minute; retry in {retry_after:.1f} s."
    )
    err.retry_after = retry_after
    return err


def concurrency_limit_error(concurrency: int, holder: str | None = None) -> ConcurrencyLimitError:
    return ConcurrencyLimitError(
        f"{ZHIPU_CONCURRENCY_MESSAGE} Concurrency limit reached for {whose(holder)}: "
        f"at most {concurrency} requests in flight."
    )


def check_amount(tokens: int) -> None:
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")


# --- in-process backend ------------------------------------------------------


class MemoryLease(Lease):
    def __init__(self, limiter: MemoryLimiter, key_ids: list[str]):
        self._limiter = limiter
        self._key_ids = key_ids
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        for key_id in self._key_ids:
            self._limiter._give_back(key_id)


class MemoryLimiter(Limiter):
    """Counters in dicts, for one gateway process.

    ``admit`` never awaits between checking and taking, so on one event loop it
    is atomic with respect to every other coroutine without a lock.
    """

    def __init__(self, *, clock: Clock = time.time):
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}  # admission times inside the rpm window, oldest first
        self._leases: dict[str, int] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # key -> (UTC day, tokens that day)

    async def admit(self, key_id: str, limits: KeyLimits, lineage: Lineage = ()) -> Lease:
        now = self._clock()
        members = family(key_id, limits, lineage)
        for member in members:
            self._check_daily_tokens(member, key_id, now)
        for member in members:
            self._check_rpm(self._prune_window(member.key_id, now), member, key_id, now)
        for member in members:
            self._check_concurrency(member, key_id)
        for member in members:
            self._recent.setdefault(member.key_id, deque()).append(now)
            self._leases[member.key_id] = self._leases.get(member.key_id, 0) + 1
        return MemoryLease(self, [m.key_id for m in members])

    async def add_tokens(self, key_id: str, tokens: int, lineage: Lineage = ()) -> None:
        check_amount(tokens)
        today = utc_day(self._clock())
        for member in [*(a.key_id for a in lineage), key_id]:
            self._tokens[member] = (today, self._used_on(member, today) + tokens)

    async def tokens_today(self, key_id: str, root: str | None = None) -> int:
        return self._used_on(key_id, utc_day(self._clock()))

    async def in_flight(self, key_id: str, root: str | None = None) -> int:
        return self._leases.get(key_id, 0)

    def _used_on(self, key_id: str, day: str) -> int:
        counted_day, used = self._tokens.get(key_id, (day, 0))
        return used if counted_day == day else 0

    def _check_daily_tokens(self, member: Ancestor, caller: str, now: float) -> None:
        limit = member.limits.daily_tokens
        if limit is None:
            return
        used = self._used_on(member.key_id, utc_day(now))
        if used >= limit:
            raise daily_quota_error(limit, used, _holder(member, caller))

    def _prune_window(self, key_id: str, now: float) -> deque[float]:
        recent = self._recent.get(key_id)
        if recent is None:
            return deque()
        while recent and recent[0] <= now - RPM_WINDOW_SECONDS:
            recent.popleft()
        if not recent:
            # Idle keys would otherwise keep an empty deque forever.
            del self._recent[key_id]
        return recent

    @staticmethod
    def _check_rpm(recent: deque[float], member: Ancestor, caller: str, now: float) -> None:
        rpm = member.limits.rpm
        if rpm is None or len(recent) < rpm:
            return
        retry_after = recent[0] + RPM_WINDOW_SECONDS - now if recent else RPM_WINDOW_SECONDS
        raise frequency_limit_error(rpm, retry_after, _holder(member, caller))

    def _check_concurrency(self, member: Ancestor, caller: str) -> None:
        concurrency = member.limits.concurrency
        if concurrency is not None and self._leases.get(member.key_id, 0) >= concurrency:
            raise concurrency_limit_error(concurrency, _holder(member, caller))

    def _give_back(self, key_id: str) -> None:
        held = self._leases.get(key_id, 0) - 1
        if held > 0:
            self._leases[key_id] = held
        else:
            self._leases.pop(key_id, None)


def _holder(member: Ancestor, caller: str) -> str | None:
    return None if member.key_id == caller else member.key_id


# --- Redis backend -----------------------------------------------------------

# Every check and every take for the key and its lineage in one script, so that
# replicas racing for the last slot cannot both win. Limits of -1 mean unlimited.
# Times are in ms from the calling replica's clock, so replicas need synchronised
# clocks. The daily tokens of every member are checked first, then every minute
# window, then every concurrency limit: the order the errors are documented in.
#
# KEYS: per member (root first, the caller last) its tokens counter for today, rpm log, leases
# ARGV: 1 now, 2 request id, 3 lease ttl, 4 rpm window, then per member daily_tokens, rpm, concurrency
# Returns {0, 0, 0} admitted, or {outcome, detail, member}: {1, used} daily quota,
# {2, retry_after_ms} rpm, {3, held} concurrency, member counted from 1.
ADMIT_SCRIPT = """
local now = tonumber(ARGV[1])
local request_id = ARGV[2]
local lease_ttl = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local members = #KEYS / 3

local function limit(i, which)
  return tonumber(ARGV[4 + 3 * (i - 1) + which])
end

for i = 1, members do
  local daily_tokens = limit(i, 1)
  if daily_tokens >= 0 then
    local used = tonumber(redis.call('GET', KEYS[3 * i - 2]) or '0')
    if used >= daily_tokens then
      return {1, used, i}
    end
  end
end

for i = 1, members do
  local rpm = limit(i, 2)
  local log = KEYS[3 * i - 1]
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  if rpm >= 0 and redis.call('ZCARD', log) >= rpm then
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    if oldest[2] then
      return {2, tonumber(oldest[2]) + window - now, i}
    end
    return {2, window, i}
  end
end

-- A lease's score is its expiry: a replica that died holding leases frees
-- them after lease_ttl instead of blocking the key for good.
for i = 1, members do
  local concurrency = limit(i, 3)
  local leases = KEYS[3 * i]
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  if concurrency >= 0 then
    local held = redis.call('ZCARD', leases)
    if held >= concurrency then
      return {3, held, i}
    end
  end
end

for i = 1, members do
  redis.call('ZADD', KEYS[3 * i - 1], now, request_id)
  redis.call('PEXPIRE', KEYS[3 * i - 1], window)
  redis.call('ZADD', KEYS[3 * i], now + lease_ttl, request_id)
  redis.call('PEXPIRE', KEYS[3 * i], lease_ttl)
end
return {0, 0, 0}
"""

ADMITTED, DAILY_QUOTA_HIT, RPM_HIT, CONCURRENCY_HIT = 0, 1, 2, 3
UNLIMITED = -1


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def limit_arg(limit: int | None) -> int:
    return UNLIMITED if limit is None else limit


class RedisLease(Lease):
    def __init__(self, client: Any, leases_keys: list[str], request_id: str):
        self._client = client
        self._leases_keys = leases_keys
        self._request_id = request_id
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        async with self._client.pipeline(transaction=True) as pipe:
            for key in self._leases_keys:
                pipe.zrem(key, self._request_id)
            await pipe.execute()


class RedisLimiter(Limiter):
    """Counters in Redis, shared by every gateway replica with the same prefix.

    ``lease_ttl`` must exceed the longest request: a lease still held after it
    stops counting against the key.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "openglm",
        clock: Clock = time.time,
        lease_ttl: float = DEFAULT_LEASE_TTL_SECONDS,
    ):
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._lease_ttl_ms = to_ms(lease_ttl)
        self._admit_script = client.register_script(ADMIT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        # Imported here so a single-process gateway never loads the Redis client.
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **kwargs)

    async def admit(self, key_id: str, limits: KeyLimits, lineage: Lineage = ()) -> Lease:
        now = self._clock()
        request_id = uuid.uuid4().hex
        members = family(key_id, limits, lineage)
        root = members[0].key_id
        keys: list[str] = []
        args: list[int | str] = [to_ms(now), request_id, self._lease_ttl_ms, to_ms(RPM_WINDOW_SECONDS)]
        for member in members:
            keys += [
                self._tokens_key(root, member.key_id, now),
                self._rpm_key(root, member.key_id),
                self._leases_key(root, member.key_id),
            ]
            args += [limit_arg(member.limits.daily_tokens), limit_arg(member.limits.rpm)]
            args.append(limit_arg(member.limits.concurrency))
        outcome, detail, index = await self._admit_script(keys=keys, args=args)
        if int(outcome) != ADMITTED:
            member = members[int(index) - 1]
            self._raise_rejected(int(outcome), int(detail), member.limits, _holder(member, key_id))
        return RedisLease(self._client, [self._leases_key(root, m.key_id) for m in members], request_id)

    async def add_tokens(self, key_id: str, tokens: int, lineage: Lineage = ()) -> None:
        check_amount(tokens)
        now = self._clock()
        root = lineage[0].key_id if lineage else key_id
        async with self._client.pipeline(transaction=True) as pipe:
            for member in [*(a.key_id for a in lineage), key_id]:
                key = self._tokens_key(root, member, now)
                pipe.incrby(key, tokens)
                pipe.expire(key, TOKEN_COUNTER_TTL_SECONDS)
            await pipe.execute()

    async def tokens_today(self, key_id: str, root: str | None = None) -> int:
        used = await self._client.get(self._tokens_key(root or key_id, key_id, self._clock()))
        return int(used or 0)

    async def in_flight(self, key_id: str, root: str | None = None) -> int:
        # Leases whose expiry has passed no longer count, pruned or not.
        now_ms = to_ms(self._clock())
        return int(await self._client.zcount(self._leases_key(root or key_id, key_id), f"({now_ms}", "+inf"))

    async def close(self) -> None:
        await self._client.aclose()

    # The root key's id in braces is a Redis Cluster hash tag: every entry of one family shares a slot, as the
    # admission script (which touches them all) requires there. A key without a lineage is its own root, and its
    # entries are named as they were before lineages existed.
    def _name(self, kind: str, root: str, key_id: str) -> str:
        tagged = f"{self._prefix}:{kind}:{{{root}}}"
        return tagged if key_id == root else f"{tagged}:{key_id}"

    def _tokens_key(self, root: str, key_id: str, now: float) -> str:
        return f"{self._name('tokens', root, key_id)}:{utc_day(now)}"

    def _rpm_key(self, root: str, key_id: str) -> str:
        return self._name("rpm", root, key_id)

    def _leases_key(self, root: str, key_id: str) -> str:
        return self._name("leases", root, key_id)

    @staticmethod
    def _raise_rejected(outcome: int, detail: int, limits: KeyLimits, holder: str | None) -> None:
        if outcome == DAILY_QUOTA_HIT:
            raise daily_quota_error(limit_arg(limits.daily_tokens), detail, holder)
        if outcome == RPM_HIT:
            raise frequency_limit_error(limit_arg(limits.rpm), detail / 1000, holder)
        if outcome == CONCURRENCY_HIT:
            raise concurrency_limit_error(limit_arg(limits.concurrency), holder)
        raise RuntimeError(f"unknown admission outcome {outcome}")


# --- selection ---------------------------------------------------------------


class LimiterFactory(Protocol):
    def __call__(self, redis_url: str | None, *, prefix: str, clock: Clock) -> Limiter: ...


limiters: Registry[LimiterFactory] = Registry("limiter")


@limiters.register("memory")
def _memory_limiter(redis_url: str | None, *, prefix: str, clock: Clock) -> Limiter:
    # One process owns its counters, so there is nothing to namespace.
    return MemoryLimiter(clock=clock)


@limiters.register("redis")
def _redis_limiter(redis_url: str | None, *, prefix: str, clock: Clock) -> Limiter:
    if not redis_url:
        raise ValueError("the redis limiter needs a redis URL")
    return RedisLimiter.from_url(redis_url, prefix=prefix, clock=clock)


def create_limiter(redis_url: str | None, *, prefix: str = "openglm", clock: Clock = time.time) -> Limiter:
    """The Redis limiter when a URL is configured, else the in-process one."""
    backend = "redis" if redis_url else "memory"
    return limiters.get(backend)(redis_url, prefix=prefix, clock=clock)
