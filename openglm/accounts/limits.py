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

Two backends share the interface: ``memory`` for a single gateway process and
``redis`` for several replicas that must share one set of counters.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections import deque
from collections.abc import Callable
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


class Lease(abc.ABC):
    """One admitted request's hold on a concurrency slot."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the slot back; calling it again is a no-op."""


class Limiter(abc.ABC):
    """Admits requests against a key's limits and counts the tokens they used."""

    @abc.abstractmethod
    async def admit(self, key_id: str, limits: KeyLimits) -> Lease:
        """Take a slot for one request, or raise the error of the first limit hit."""

    @abc.abstractmethod
    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Count a settled request's prompt + completion tokens against today."""

    @abc.abstractmethod
    async def tokens_today(self, key_id: str) -> int:
        """Tokens the key has used in the current UTC day."""

    @abc.abstractmethod
    async def in_flight(self, key_id: str) -> int:
        """Leases the key holds now."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def utc_day(timestamp: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(timestamp))


def daily_quota_error(limit: int, used: int) -> DailyQuotaError:
    return DailyQuotaError(
        f"Daily token quota exceeded for this API key: {used} of {limit} tokens used today; it resets at 00:00 UTC."
    )


def frequency_limit_error(rpm: int, retry_after: float) -> FrequencyLimitError:
    err = FrequencyLimitError(
        f"Rate limit exceeded for this API key: at most {rpm} requests per minute; retry in {retry_after:.1f} s."
    )
    err.retry_after = retry_after
    return err


def concurrency_limit_error(concurrency: int) -> ConcurrencyLimitError:
    return ConcurrencyLimitError(
        f"{ZHIPU_CONCURRENCY_MESSAGE} Concurrency limit reached for this API key: "
        f"at most {concurrency} requests in flight."
    )


def check_amount(tokens: int) -> None:
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")


# --- in-process backend ------------------------------------------------------


class MemoryLease(Lease):
    def __init__(self, limiter: MemoryLimiter, key_id: str):
        self._limiter = limiter
        self._key_id = key_id
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._limiter._give_back(self._key_id)


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

    async def admit(self, key_id: str, limits: KeyLimits) -> Lease:
        now = self._clock()
        self._check_daily_tokens(key_id, limits.daily_tokens, now)
        recent = self._prune_window(key_id, now)
        self._check_rpm(recent, limits.rpm, now)
        self._check_concurrency(key_id, limits.concurrency)
        self._recent.setdefault(key_id, deque()).append(now)
        self._leases[key_id] = self._leases.get(key_id, 0) + 1
        return MemoryLease(self, key_id)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        check_amount(tokens)
        today = utc_day(self._clock())
        self._tokens[key_id] = (today, self._used_on(key_id, today) + tokens)

    async def tokens_today(self, key_id: str) -> int:
        return self._used_on(key_id, utc_day(self._clock()))

    async def in_flight(self, key_id: str) -> int:
        return self._leases.get(key_id, 0)

    def _used_on(self, key_id: str, day: str) -> int:
        counted_day, used = self._tokens.get(key_id, (day, 0))
        return used if counted_day == day else 0

    def _check_daily_tokens(self, key_id: str, limit: int | None, now: float) -> None:
        if limit is None:
            return
        used = self._used_on(key_id, utc_day(now))
        if used >= limit:
            raise daily_quota_error(limit, used)

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
    def _check_rpm(recent: deque[float], rpm: int | None, now: float) -> None:
        if rpm is None or len(recent) < rpm:
            return
        retry_after = recent[0] + RPM_WINDOW_SECONDS - now if recent else RPM_WINDOW_SECONDS
        raise frequency_limit_error(rpm, retry_after)

    def _check_concurrency(self, key_id: str, concurrency: int | None) -> None:
        if concurrency is not None and self._leases.get(key_id, 0) >= concurrency:
            raise concurrency_limit_error(concurrency)

    def _give_back(self, key_id: str) -> None:
        held = self._leases.get(key_id, 0) - 1
        if held > 0:
            self._leases[key_id] = held
        else:
            self._leases.pop(key_id, None)


# --- Redis backend -----------------------------------------------------------

# All three checks and both takes in one script, so that replicas racing for
# the last slot cannot both win. Limits of -1 mean unlimited. Times are in ms
# from the calling replica's clock, so replicas need synchronised clocks.
#
# KEYS: 1 tokens counter for today, 2 rpm log, 3 leases
# ARGV: 1 now, 2 daily_tokens, 3 rpm, 4 concurrency, 5 request id, 6 lease ttl, 7 rpm window
# Returns {0, 0} admitted, {1, used} daily quota, {2, retry_after_ms} rpm, {3, held} concurrency.
ADMIT_SCRIPT = """
local now = tonumber(ARGV[1])
local daily_tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local concurrency = tonumber(ARGV[4])
local request_id = ARGV[5]
local lease_ttl = tonumber(ARGV[6])
local window = tonumber(ARGV[7])

if daily_tokens >= 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if used >= daily_tokens then
    return {1, used}
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if rpm >= 0 and redis.call('ZCARD', KEYS[2]) >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] then
    return {2, tonumber(oldest[2]) + window - now}
  end
  return {2, window}
end

-- A lease's score is its expiry: a replica that died holding leases frees
-- them after lease_ttl instead of blocking the key for good.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if concurrency >= 0 then
  local held = redis.call('ZCARD', KEYS[3])
  if held >= concurrency then
    return {3, held}
  end
end

redis.call('ZADD', KEYS[2], now, request_id)
redis.call('PEXPIRE', KEYS[2], window)
redis.call('ZADD', KEYS[3], now + lease_ttl, request_id)
redis.call('PEXPIRE', KEYS[3], lease_ttl)
return {0, 0}
"""

ADMITTED, DAILY_QUOTA_HIT, RPM_HIT, CONCURRENCY_HIT = 0, 1, 2, 3
UNLIMITED = -1


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def limit_arg(limit: int | None) -> int:
    return UNLIMITED if limit is None else limit


class RedisLease(Lease):
    def __init__(self, client: Any, leases_key: str, request_id: str):
        self._client = client
        self._leases_key = leases_key
        self._request_id = request_id
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._client.zrem(self._leases_key, self._request_id)


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

    async def admit(self, key_id: str, limits: KeyLimits) -> Lease:
        now = self._clock()
        request_id = uuid.uuid4().hex
        outcome, detail = await self._admit_script(
            keys=[self._tokens_key(key_id, now), self._rpm_key(key_id), self._leases_key(key_id)],
            args=[
                to_ms(now),
                limit_arg(limits.daily_tokens),
                limit_arg(limits.rpm),
                limit_arg(limits.concurrency),
                request_id,
                self._lease_ttl_ms,
                to_ms(RPM_WINDOW_SECONDS),
            ],
        )
        self._raise_if_rejected(int(outcome), int(detail), limits)
        return RedisLease(self._client, self._leases_key(key_id), request_id)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        check_amount(tokens)
        key = self._tokens_key(key_id, self._clock())
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, tokens)
            pipe.expire(key, TOKEN_COUNTER_TTL_SECONDS)
            await pipe.execute()

    async def tokens_today(self, key_id: str) -> int:
        used = await self._client.get(self._tokens_key(key_id, self._clock()))
        return int(used or 0)

    async def in_flight(self, key_id: str) -> int:
        # Leases whose expiry has passed no longer count, pruned or not.
        now_ms = to_ms(self._clock())
        return int(await self._client.zcount(self._leases_key(key_id), f"({now_ms}", "+inf"))

    async def close(self) -> None:
        await self._client.aclose()

    # The key id in braces is a Redis Cluster hash tag: one key's three entries share a slot, as the admission
    # script (which touches all three) requires there.
    def _tokens_key(self, key_id: str, now: float) -> str:
        return f"{self._prefix}:tokens:{{{key_id}}}:{utc_day(now)}"

    def _rpm_key(self, key_id: str) -> str:
        return f"{self._prefix}:rpm:{{{key_id}}}"

    def _leases_key(self, key_id: str) -> str:
        return f"{self._prefix}:leases:{{{key_id}}}"

    @staticmethod
    def _raise_if_rejected(outcome: int, detail: int, limits: KeyLimits) -> None:
        if outcome == DAILY_QUOTA_HIT:
            raise daily_quota_error(limit_arg(limits.daily_tokens), detail)
        if outcome == RPM_HIT:
            raise frequency_limit_error(limit_arg(limits.rpm), detail / 1000)
        if outcome == CONCURRENCY_HIT:
            raise concurrency_limit_error(limit_arg(limits.concurrency))


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
