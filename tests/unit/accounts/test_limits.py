"""Per-key limits, run against both backends: in-process and the machine's real Redis.

Time comes from a fake clock, so the minute window and the UTC day are
crossed by moving the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import calendar
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from openglm.accounts.limits import (
    ZHIPU_CONCURRENCY_MESSAGE,
    Ancestor,
    KeyLimits,
    Lease,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    create_limiter,
    limiters,
)
from openglm.errors import ConcurrencyLimitError, DailyQuotaError, FrequencyLimitError

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY = "key-1"
# 2025-03-01 23:58:00 UTC: two minutes before a UTC day boundary.
START = float(calendar.timegm((2025, 3, 1, 23, 58, 0)))


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A prefix of its own for each test; every key under it is deleted afterwards."""
    prefix = f"openglm-test-{uuid.uuid4().hex}"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_prefix: str, clock: FakeClock) -> AsyncIterator[Limiter]:
    redis_url = REDIS_URL if request.param == "redis" else None
    limiter = create_limiter(redis_url, prefix=redis_prefix, clock=clock)
    yield limiter
    await limiter.close()


async def admit_many(limiter: Limiter, limits: KeyLimits, count: int, key_id: str = KEY) -> list[Lease]:
    return [await limiter.admit(key_id, limits) for _ in range(count)]


# --- concurrency ---------------------------------------------------------------


async def test_concurrency_limit_raises_1302_and_release_frees_a_slot(limiter: Limiter) -> None:
    limits = KeyLimits(concurrency=2)
    first, _second = await admit_many(limiter, limits, 2)

    with pytest.raises(ConcurrencyLimitError) as excinfo:
        await limiter.admit(KEY, limits)
    assert excinfo.value.code == "1302"
    assert excinfo.value.message.startswith(ZHIPU_CONCURRENCY_MESSAGE)
    assert "2" in excinfo.value.message.removeprefix(ZHIPU_CONCURRENCY_MESSAGE)
    assert await limiter.in_flight(KEY) == 2

    await first.release()
    assert await limiter.in_flight(KEY) == 1
    await limiter.admit(KEY, limits)
    assert await limiter.in_flight(KEY) == 2


async def test_release_twice_frees_only_one_slot(limiter: Limiter) -> None:
    first, _second = await admit_many(limiter, KeyLimits(concurrency=2), 2)

    await first.release()
    await first.release()

    assert await limiter.in_flight(KEY) == 1


async def test_keys_do_not_share_limits(limiter: Limiter) -> None:
    limits = KeyLimits(concurrency=1, rpm=1)
    await limiter.admit("key-a", limits)
    await limiter.admit("key-b", limits)

    await limiter.add_tokens("key-a", 10)

    assert await limiter.in_flight("key-a") == 1
    assert await limiter.tokens_today("key-b") == 0


# --- requests per minute -------------------------------------------------------


async def test_rpm_limit_raises_1303_with_retry_after_until_the_oldest_request_leaves(
    limiter: Limiter, clock: FakeClock
) -> None:
    limits = KeyLimits(rpm=3)
    for _ in range(3):
        lease = await limiter.admit(KEY, limits)
        await lease.release()
        clock.advance(10)

    with pytest.raises(FrequencyLimitError) as excinfo:
        await limiter.admit(KEY, limits)
    assert excinfo.value.code == "1303"
    assert "3 requests per minute" in excinfo.value.message
    # Requests at 0, 10 and 20 s; now is 30 s, so the first leaves at 60 s.
    assert excinfo.value.retry_after == pytest.approx(30)
    assert excinfo.value.headers()["Retry-After"] == "30"

    clock.advance(30)
    await limiter.admit(KEY, limits)
    with pytest.raises(FrequencyLimitError):
        await limiter.admit(KEY, limits)


async def test_rpm_window_empties_after_sixty_seconds(limiter: Limiter, clock: FakeClock) -> None:
    limits = KeyLimits(rpm=5)
    await admit_many(limiter, limits, 5)
    with pytest.raises(FrequencyLimitError):
        await limiter.admit(KEY, limits)

    clock.advance(60)

    await admit_many(limiter, limits, 5)


async def test_retry_after_keeps_fractions_of_a_second(limiter: Limiter, clock: FakeClock) -> None:
    limits = KeyLimits(rpm=1)
    await limiter.admit(KEY, limits)
    clock.advance(59.75)

    with pytest.raises(FrequencyLimitError) as excinfo:
        await limiter.admit(KEY, limits)

    assert excinfo.value.retry_after == pytest.approx(0.25)


# --- a rejected request takes nothing -------------------------------------------


async def test_request_rejected_for_concurrency_is_not_counted_in_the_rpm_window(limiter: Limiter) -> None:
    limits = KeyLimits(concurrency=1, rpm=2)
    held = await limiter.admit(KEY, limits)
    for _ in range(3):
        with pytest.raises(ConcurrencyLimitError):
            await limiter.admit(KEY, limits)

    await held.release()

    # Only the first admission is in the window, so one more fits.
    await limiter.admit(KEY, limits)


async def test_request_rejected_for_rpm_takes_no_lease(limiter: Limiter) -> None:
    limits = KeyLimits(concurrency=1, rpm=1)
    await (await limiter.admit(KEY, limits)).release()

    with pytest.raises(FrequencyLimitError):
        await limiter.admit(KEY, limits)

    assert await limiter.in_flight(KEY) == 0


async def test_request_rejected_for_daily_tokens_takes_neither_rpm_nor_lease(limiter: Limiter) -> None:
    await limiter.add_tokens(KEY, 10)
    with pytest.raises(DailyQuotaError):
        await limiter.admit(KEY, KeyLimits(concurrency=1, rpm=1, daily_tokens=10))

    assert await limiter.in_flight(KEY) == 0
    await limiter.admit(KEY, KeyLimits(concurrency=1, rpm=1))


async def test_daily_quota_is_checked_before_rpm_and_rpm_before_concurrency(limiter: Limiter) -> None:
    await limiter.admit(KEY, KeyLimits())
    await limiter.add_tokens(KEY, 5)

    with pytest.raises(DailyQuotaError):
        await limiter.admit(KEY, KeyLimits(concurrency=1, rpm=1, daily_tokens=5))
    with pytest.raises(FrequencyLimitError):
        await limiter.admit(KEY, KeyLimits(concurrency=1, rpm=1))


# --- tokens per UTC day ------------------------------------------------------------


async def test_daily_quota_raises_1304_once_tokens_reach_the_limit(limiter: Limiter) -> None:
    limits = KeyLimits(daily_tokens=100)
    await limiter.add_tokens(KEY, 60)
    await limiter.add_tokens(KEY, 39)
    await limiter.admit(KEY, limits)

    await limiter.add_tokens(KEY, 1)

    assert await limiter.tokens_today(KEY) == 100
    with pytest.raises(DailyQuotaError) as excinfo:
        await limiter.admit(KEY, limits)
    assert excinfo.value.code == "1304"
    assert excinfo.value.retryable is False
    assert "100" in excinfo.value.message


async def test_a_new_utc_day_resets_the_token_count(limiter: Limiter, clock: FakeClock) -> None:
    limits = KeyLimits(daily_tokens=100)
    await limiter.add_tokens(KEY, 150)
    with pytest.raises(DailyQuotaError):
        await limiter.admit(KEY, limits)

    clock.advance(119)  # 23:59:59 UTC, still the same day
    with pytest.raises(DailyQuotaError):
        await limiter.admit(KEY, limits)

    clock.advance(1)  # 00:00:00 UTC
    assert await limiter.tokens_today(KEY) == 0
    await limiter.admit(KEY, limits)


async def test_negative_tokens_are_refused(limiter: Limiter) -> None:
    with pytest.raises(ValueError, match="tokens"):
        await limiter.add_tokens(KEY, -1)


# --- unlimited ---------------------------------------------------------------------


async def test_none_limits_mean_unlimited(limiter: Limiter) -> None:
    await limiter.add_tokens(KEY, 10**9)

    await admit_many(limiter, KeyLimits(), 150)

    assert await limiter.in_flight(KEY) == 150


# --- Redis: shared by replicas, leases expire ---------------------------------------


async def test_two_redis_replicas_share_the_concurrency_limit(redis_prefix: str, clock: FakeClock) -> None:
    replicas = [RedisLimiter.from_url(REDIS_URL, prefix=redis_prefix, clock=clock) for _ in range(2)]
    try:
        outcomes = await asyncio.gather(
            *(replicas[i % 2].admit(KEY, KeyLimits(concurrency=5)) for i in range(20)),
            return_exceptions=True,
        )
        admitted = [outcome for outcome in outcomes if isinstance(outcome, Lease)]
        rejected = [outcome for outcome in outcomes if isinstance(outcome, ConcurrencyLimitError)]

        assert len(admitted) == 5
        assert len(rejected) == 15
        assert await replicas[0].in_flight(KEY) == await replicas[1].in_flight(KEY) == 5

        await admitted[0].release()
        await replicas[1].admit(KEY, KeyLimits(concurrency=5))
    finally:
        for replica in replicas:
            await replica.close()


async def test_unreleased_redis_lease_expires_after_lease_ttl(redis_prefix: str, clock: FakeClock) -> None:
    limiter = RedisLimiter.from_url(REDIS_URL, prefix=redis_prefix, clock=clock, lease_ttl=30)
    limits = KeyLimits(concurrency=1)
    try:
        await limiter.admit(KEY, limits)  # never released: its replica "crashed"

        clock.advance(29.9)
        with pytest.raises(ConcurrencyLimitError):
            await limiter.admit(KEY, limits)

        clock.advance(0.1)
        assert await limiter.in_flight(KEY) == 0
        await limiter.admit(KEY, limits)
        assert await limiter.in_flight(KEY) == 1
    finally:
        await limiter.close()


async def test_redis_keys_live_under_the_prefix_and_expire(redis_prefix: str, clock: FakeClock) -> None:
    limiter = RedisLimiter.from_url(REDIS_URL, prefix=redis_prefix, clock=clock)
    client = Redis.from_url(REDIS_URL)
    try:
        await limiter.admit(KEY, KeyLimits(concurrency=1, rpm=1, daily_tokens=1))
        await limiter.add_tokens(KEY, 1)

        keys = sorted([key.decode() async for key in client.scan_iter(match=f"{redis_prefix}:*")])
        assert keys == [
            f"{redis_prefix}:leases:{{{KEY}}}",
            f"{redis_prefix}:rpm:{{{KEY}}}",
            f"{redis_prefix}:tokens:{{{KEY}}}:20250301",
        ]
        for key in keys:
            assert await client.pttl(key) > 0
    finally:
        await client.aclose()
        await limiter.close()


# --- selection ---------------------------------------------------------------------


@pytest.mark.parametrize("redis_url", [None, ""])
async def test_create_limiter_without_a_redis_url_is_in_process(redis_url: str | None) -> None:
    limiter = create_limiter(redis_url)
    assert isinstance(limiter, MemoryLimiter)
    await limiter.close()


async def test_create_limiter_with_a_redis_url_uses_redis() -> None:
    limiter = create_limiter(REDIS_URL, prefix="openglm-test-unused")
    assert isinstance(limiter, RedisLimiter)
    await limiter.close()


def test_unknown_limiter_names_the_known_ones() -> None:
    assert limiters.names() == ["memory", "redis"]
    with pytest.raises(KeyError, match="known: memory, redis"):
        limiters.get("etcd")


# --- keys made from keys: a family shares its ancestors' limits -----------------------

PARENT, CHILD, GRANDCHILD = "key-parent", "key-child", "key-grandchild"


def lineage(*pairs: tuple[str, KeyLimits]) -> list[Ancestor]:
    return [Ancestor(key_id, limits) for key_id, limits in pairs]


async def test_a_childs_tokens_count_against_its_ancestors(limiter: Limiter) -> None:
    chain = lineage((PARENT, KeyLimits(daily_tokens=100)), (CHILD, KeyLimits()))
    await limiter.add_tokens(GRANDCHILD, 60, chain)
    assert await limiter.tokens_today(PARENT) == 60
    assert await limiter.tokens_today(CHILD, root=PARENT) == 60
    assert await limiter.tokens_today(GRANDCHILD, root=PARENT) == 60
    await limiter.add_tokens(PARENT, 40)
    with pytest.raises(DailyQuotaError) as refused:
        await limiter.admit(GRANDCHILD, KeyLimits(daily_tokens=1000), chain)
    assert PARENT in refused.value.message  # the quota that was hit is the parent's
    with pytest.raises(DailyQuotaError) as own:
        await limiter.admit(PARENT, KeyLimits(daily_tokens=100))
    assert "this API key" in own.value.message


async def test_a_family_shares_its_ancestors_rate_and_slots(limiter: Limiter) -> None:
    parent_limits = KeyLimits(concurrency=2, rpm=3)
    chain = lineage((PARENT, parent_limits))
    held = [await limiter.admit(CHILD, KeyLimits(), chain), await limiter.admit(PARENT, parent_limits)]
    assert await limiter.in_flight(PARENT) == 2
    assert await limiter.in_flight(CHILD, root=PARENT) == 1
    with pytest.raises(ConcurrencyLimitError) as busy:
        await limiter.admit(CHILD, KeyLimits(), chain)
    assert PARENT in busy.value.message
    await held[0].release()
    assert await limiter.in_flight(PARENT) == 1
    assert await limiter.in_flight(CHILD, root=PARENT) == 0
    await limiter.admit(CHILD, KeyLimits(), chain)  # the third request of the parent's minute
    await held[1].release()
    with pytest.raises(FrequencyLimitError):
        await limiter.admit(CHILD, KeyLimits(), chain)


async def test_a_child_refused_by_its_ancestor_takes_nothing(limiter: Limiter) -> None:
    chain = lineage((PARENT, KeyLimits(concurrency=1)))
    held = await limiter.admit(PARENT, KeyLimits(concurrency=1))
    with pytest.raises(ConcurrencyLimitError):
        await limiter.admit(CHILD, KeyLimits(rpm=1), chain)
    assert await limiter.in_flight(CHILD, root=PARENT) == 0
    await held.release()
    await limiter.admit(CHILD, KeyLimits(rpm=1), chain)  # its own minute window was not touched
