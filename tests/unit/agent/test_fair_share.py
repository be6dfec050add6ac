"""Kernels shared fairly between accounts (issue #12, item 9): a per-account cap, taking over the longest-idle
kernel of an account over its share, and a bounded queue when every kernel is busy. Real kernels."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from openglm.agent.sandbox.kernel import SandboxedKernel
from openglm.agent.sandbox.policy import MiB, SandboxPolicy
from openglm.agent.sandbox.pool import KernelPool, SandboxBusyError

POLICY = SandboxPolicy(timeout=10.0, memory_bytes=1024 * MiB)


@pytest.fixture
def root() -> Iterator[Path]:
    data = Path(tempfile.mkdtemp(prefix="openglm-test-", dir="/opt"))
    yield data / "sandboxes"
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def small_pool(root: Path) -> AsyncIterator[KernelPool]:
    """Two kernels; an account may hold both."""
    pool = KernelPool(POLICY, root, warm=0, max_kernels=2, kernels_per_account=2, queue_seconds=20)
    await pool.start()
    yield pool
    await pool.close()


async def run(pool: KernelPool, conversation: str, account: str, code: str) -> str:
    async with pool.session(conversation, account) as kernel:
        result = await kernel.execute(code)
    assert result.error is None, result.logs
    return result.logs


async def test_the_share_defaults_to_half_the_pool(root: Path) -> None:
    assert KernelPool(POLICY, root, max_kernels=16).kernels_per_account == 8
    assert KernelPool(POLICY, root, max_kernels=1).kernels_per_account == 1
    assert KernelPool(POLICY, root, max_kernels=4, kernels_per_account=9).kernels_per_account == 4


async def test_an_account_at_its_cap_gives_up_its_own_longest_idle_kernel(root: Path) -> None:
    pool = KernelPool(POLICY, root, warm=0, max_kernels=3, kernels_per_account=2)
    await pool.start()
    try:
        for conversation in ("a1", "a2", "a3"):
            await run(pool, conversation, "A", f"x = {conversation!r}")
        assert pool.kernels_of("A") == 2 and pool.workspace_of("a1") is None  # a1 was the longest idle
        assert await run(pool, "a3", "A", "print(x)") == "a3\n"  # the others keep their state
        assert await run(pool, "b1", "B", "print('b')") == "b\n"  # the third kernel is free for B
        assert not pool.state_lost("a3")
        async with pool.session("a1", "A") as kernel:  # back, in a new kernel, and the run is told so
            assert pool.state_lost("a1")
            assert (await kernel.execute("print('x' in globals())")).logs == "False\n"
    finally:
        await pool.close()


async def test_a_full_pool_gives_a_newcomer_the_idle_kernel_of_an_account_over_its_share(
    small_pool: KernelPool,
) -> None:
    await run(small_pool, "a1", "A", "x = 1")
    await run(small_pool, "a2", "A", "x = 2")
    assert small_pool.kernels_of("A") == 2  # A holds the whole pool
    assert await run(small_pool, "b1", "B", "print('B runs')") == "B runs\n"
    assert small_pool.workspace_of("a1") is None and small_pool.workspace_of("a2") is not None
    # Now each holds its fair share (one): A's next new conversation takes over A's own idle kernel, not B's.
    await run(small_pool, "a3", "A", "print(1)")
    assert small_pool.workspace_of("a2") is None and small_pool.workspace_of("b1") is not None
    async with small_pool.session("a1", "A") as kernel:  # a1's kernel went to B: the run is told
        assert small_pool.state_lost("a1") and not small_pool.state_lost("a1")
        assert (await kernel.execute("print('x' in globals())")).logs == "False\n"


async def test_when_every_kernel_is_busy_a_newcomer_waits_for_one(small_pool: KernelPool) -> None:
    async def busy(conversation: str, seconds: float) -> None:
        await run(small_pool, conversation, "A", f"import time; time.sleep({seconds})")

    await run(small_pool, "a1", "A", "print(1)")
    await run(small_pool, "a2", "A", "print(1)")
    runs = [asyncio.create_task(busy("a1", 2)), asyncio.create_task(busy("a2", 4))]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    assert await run(small_pool, "b1", "B", "print('B')") == "B\n"  # A's first kernel, once it is idle
    waited = time.monotonic() - started
    assert 0.5 < waited < 10
    await asyncio.gather(*runs)
    assert small_pool.workspace_of("a1") is None and small_pool.workspace_of("a2") is not None


async def test_the_wait_is_bounded_and_the_error_says_busy_and_when_to_retry(root: Path) -> None:
    pool = KernelPool(POLICY, root, warm=0, max_kernels=1, queue_seconds=0.5)
    await pool.start()
    try:
        hold = asyncio.create_task(run(pool, "a1", "A", "import time; time.sleep(2)"))
        await asyncio.sleep(0.5)
        with pytest.raises(SandboxBusyError, match="busy") as busy:
            await run(pool, "b1", "B", "print(1)")
        assert busy.value.code == "1302" and busy.value.status == 429 and busy.value.retry_after
        await hold
        assert await run(pool, "b1", "B", "print('now')") == "now\n"  # A's kernel is idle again
    finally:
        await pool.close()


class HeldBoots(KernelPool):
    """A pool whose kernel boots wait for the test's word before they start (the boots themselves are real): a
    boot or a takeover that takes as long as the test likes."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.boots = 0

    async def _new_kernel(self) -> SandboxedKernel:
        self.boots += 1
        try:
            await self.gate.wait()
        except BaseException:
            self._free_slot()  # as a start that fails does
            raise
        return await super()._new_kernel()


@pytest.fixture
async def held_pool(root: Path) -> AsyncIterator[HeldBoots]:
    pool = HeldBoots(POLICY, root, warm=0, max_kernels=3, kernels_per_account=1, queue_seconds=20)
    await pool.start()
    yield pool
    pool.gate.set()
    await pool.close()


async def test_a_run_in_a_conversation_with_its_kernel_never_waits_for_another_kernel_to_start(
    held_pool: HeldBoots,
) -> None:
    """A review measured B's run in its own conversation at 7 ms alone and 927 ms while A opened a conversation at
    its cap: the takeover held a pool-wide lock across A's kernel's shutdown and the new one's boot. Here A's boot
    does not end until B has run."""
    await run(held_pool, "b1", "B", "x = 'b'")
    await run(held_pool, "a1", "A", "x = 'a'")
    held_pool.gate.clear()
    opening = asyncio.create_task(run(held_pool, "a2", "A", "print('a2')"))  # A at its cap: takes over a1
    while held_pool.boots < 3:  # a1 shut down, a2's kernel about to boot
        await asyncio.sleep(0.01)
    assert await asyncio.wait_for(run(held_pool, "b1", "B", "print(x)"), 10) == "b\n"
    assert not opening.done()
    held_pool.gate.set()
    assert await opening == "a2\n"
    assert held_pool.workspace_of("a1") is None


async def test_requests_of_one_new_conversation_share_one_kernel_start(held_pool: HeldBoots) -> None:
    held_pool.gate.clear()
    counting = "n = globals().get('n', 0) + 1\nprint(n)"
    runs = [asyncio.create_task(run(held_pool, "c1", "C", counting)) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert held_pool.boots == 1
    held_pool.gate.set()
    assert sorted(await asyncio.gather(*runs)) == ["1\n", "2\n", "3\n"]  # one kernel, runs one after another
    assert held_pool.boots == 1 and held_pool.kernels_of("C") == 1


async def test_a_request_that_goes_away_while_its_kernel_starts_leaves_the_start_to_the_next(
    held_pool: HeldBoots,
) -> None:
    held_pool.gate.clear()
    first = asyncio.create_task(run(held_pool, "c1", "C", "print('first')"))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(run(held_pool, "c1", "C", "print('second')"))
    await asyncio.sleep(0.1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    held_pool.gate.set()
    assert await second == "second\n"
    assert held_pool.boots == 2 and held_pool.kernels_of("C") == 1
    await held_pool.close()
    assert held_pool._slots == 0 and not held_pool._uids_in_use  # nothing held by the abandoned start


async def test_closing_the_pool_while_a_kernel_starts_leaves_nothing_behind(held_pool: HeldBoots) -> None:
    held_pool.gate.clear()
    opening = asyncio.create_task(run(held_pool, "c1", "C", "print(1)"))
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(held_pool.close())
    await asyncio.sleep(0.1)
    assert not closing.done()  # it waits for the kernel on its way, to shut it down with the others
    held_pool.gate.set()
    await closing
    await asyncio.gather(opening, return_exceptions=True)  # its kernel went away under it: whatever it got
    assert held_pool._slots == 0 and not held_pool._uids_in_use
    assert held_pool.cgroups is None or not any(
        (base / held_pool.cgroups.name).exists() for base in held_pool.cgroups.bases()
    )
