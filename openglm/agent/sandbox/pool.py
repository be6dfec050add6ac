"""Kernels kept warm, one per conversation, shared fairly between accounts, reaped when idle.

``session(conversation, account)`` gives the conversation's own kernel (state carries over between calls), or
hands it a pre-started one, so the first run of a conversation does not wait for a kernel to boot; the pool
refills itself in the background. A kernel that died is replaced on the next session.

No account holds more than ``kernels_per_account`` kernels (half the pool unless configured): a new
conversation of an account at its cap takes over the account's own longest-idle kernel. When the pool is full
of other accounts' kernels, a new conversation takes over the longest-idle kernel of an account holding more
than its fair share (the pool divided evenly between the accounts holding kernels and the newcomer). When no
kernel can be taken over (all busy running code), it waits up to ``queue_seconds`` for one to come free, then
fails with a retryable "busy" error (1302). A kernel taken over loses its state; its conversation gets a new
kernel on its next run, and the run says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConcurrencyLimitError
from .cgroups import CgroupTree, KernelCgroup, Limits, open_tree
from .kernel import KernelStartError, SandboxedKernel, remove_workspace
from .policy import SandboxPolicy

log = logging.getLogger(__name__)
UID_SPAN_PER_KERNEL = 64
UID_LOCKS = Path("/run/openglm-sandbox-uids")
RETRY_AFTER_SECONDS = 5.0
MAX_REMEMBERED_LOSSES = 4096


@dataclass
class _Lease:
    kernel: SandboxedKernel
    account: str
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # runs holding or waiting for this kernel: one in use is never taken over
    evicted: bool = False  # taken over (or released): a run that waited for it leases again
    state_lost: bool = False  # a new kernel for a conversation whose kernel was taken over

    @property
    def idle(self) -> bool:
        return self.users == 0


class SandboxBusyError(ConcurrencyLimitError):
    retry_after = RETRY_AFTER_SECONDS


class KernelPool:
    def __init__(
        self,
        policy: SandboxPolicy,
        root: Path,
        *,
        warm: int = 2,
        max_kernels: int = 16,
        idle_seconds: float = 900.0,
        hidden: list[str] | None = None,
        kernels_per_account: int = 0,
        queue_seconds: float = 30.0,
    ):
        self.policy = policy
        self.root = root  # workspaces live under root/<kernel id>
        self.warm = warm
        self.max_kernels = max_kernels
        self.idle_seconds = idle_seconds
        self.hidden = hidden or []
        self.kernels_per_account = min(kernels_per_account or max(1, max_kernels // 2), max_kernels)
        self.queue_seconds = queue_seconds
        self._ready: list[SandboxedKernel] = []
        self._conversations: dict[str, _Lease] = {}
        self._lost: OrderedDict[str, None] = OrderedDict()  # conversations whose kernel was taken over
        # Kernels alive, starting or being shut down; never more than max_kernels. A slot is reserved before a
        # kernel starts (no await between the check and the reservation) and freed once it is fully gone.
        self._slots = 0
        self._queued = 0  # leases waiting for room: the warm refill stands back meanwhile
        self._changed = asyncio.Event()  # set (and replaced) whenever a kernel comes free or goes
        self._uids_in_use: set[int] = set()
        self._uid_locks: dict[int, int] = {}
        self._uid_cursor = secrets.randbelow(UID_SPAN_PER_KERNEL * max_kernels)
        self._refilling: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._leasing = asyncio.Lock()
        self.cgroups: CgroupTree | None = None

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # kernels reach their own workspace, cannot list the others
        self._remove_stale_workspaces()
        self.cgroups, how = await asyncio.get_running_loop().run_in_executor(None, open_tree)
        if self.cgroups is None:
            log.warning("no per-kernel cgroups (%s): sandboxed kernels have per-process rlimits only", how)
        else:
            log.info("sandboxed kernels get cgroup %s limits (%s)", how, self.cgroups.name)
        self._refill_soon()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        for task in (self._refilling, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        kernels = [*self._ready, *(lease.kernel for lease in self._conversations.values())]
        self._ready.clear()
        self._conversations.clear()
        await asyncio.gather(*(self._dispose(k) for k in kernels), return_exceptions=True)
        if self.cgroups is not None:
            self.cgroups.close()

    @contextlib.asynccontextmanager
    async def session(self, conversation: str, account: str = "") -> AsyncIterator[SandboxedKernel]:
        """The conversation's kernel, held for one run (runs of one conversation never overlap)."""
        while True:
            lease = await self._lease(conversation, account)
            try:
                async with lease.lock:
                    if lease.evicted:
                        continue  # taken away while this run waited behind another: lease again
                    if not lease.kernel.alive:  # it died (limits, a kill): a fresh one, state lost
                        await self._replace_dead(conversation, lease)
                    try:
                        yield lease.kernel
                    finally:
                        lease.last_used = time.monotonic()
                    return
            finally:
                lease.users -= 1
                self._notify()

    async def release(self, conversation: str) -> None:
        lease = self._conversations.pop(conversation, None)
        if lease is not None:
            lease.evicted = True
            async with lease.lock:
                await self._dispose(lease.kernel)

    def workspace_of(self, conversation: str) -> Path | None:
        lease = self._conversations.get(conversation)
        return lease.kernel.workspace if lease else None

    def state_lost(self, conversation: str) -> bool:
        """Whether the conversation's kernel was taken over by another conversation since its last run (its
        variables are gone); answered once."""
        lease = self._conversations.get(conversation)
        if lease is None or not lease.state_lost:
            return False
        lease.state_lost = False
        return True

    def kernels_of(self, account: str) -> int:
        return sum(1 for lease in self._conversations.values() if lease.account == account)

    async def _lease(self, conversation: str, account: str) -> _Lease:
        """The conversation's lease, counted as used (so nothing takes it over) before anything else runs."""
        deadline = time.monotonic() + self.queue_seconds
        queued = False
        try:
            while True:
                async with self._leasing:  # two first requests of one conversation must not both take a kernel
                    lease = self._conversations.get(conversation)
                    if lease is None:
                        kernel = await self._kernel_for(account)
                        if kernel is not None:
                            lease = _Lease(kernel, account, time.monotonic())
                            lease.state_lost = self._lost.pop(conversation, False) is None
                            self._conversations[conversation] = lease
                    if lease is not None:
                        lease.users += 1
                        return lease
                    changed = self._changed
                if not queued:
                    queued = True
                    self._queued += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxBusyError(
                        f"all {self.max_kernels} sandboxed kernels are busy running code (waited "
                        f"{self.queue_seconds:g} s for one); try again shortly"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
        finally:
            if queued:
                self._queued -= 1

    async def _kernel_for(self, account: str) -> SandboxedKernel | None:
        """A kernel for a new conversation of ``account``, by the fair-share rules; None: wait for one."""
        own = [lease for lease in self._conversations.values() if lease.account == account]
        if len(own) >= self.kernels_per_account:
            victim = _longest_idle(own)
            return None if victim is None else await self._take_over(victim)
        kernel = await self._take(have_slot=False)
        if kernel is not None:
            return kernel
        # The pool is full: an idle kernel of an account over its fair share, else one of the account's own.
        victim = _longest_idle(self._over_fair_share(account)) or _longest_idle(own)
        return None if victim is None else await self._take_over(victim)

    def _over_fair_share(self, newcomer: str) -> list[_Lease]:
        """Leases of accounts holding more than the pool divided evenly between them and ``newcomer``."""
        held = Counter(lease.account for lease in self._conversations.values())
        share = self.max_kernels / len(set(held) | {newcomer})
        return [lease for lease in self._conversations.values() if held[lease.account] > share]

    async def _take_over(self, victim: _Lease) -> SandboxedKernel:
        """Shut ``victim``'s kernel down and start another in its slot (or hand over a pre-started one)."""
        for conversation, lease in list(self._conversations.items()):
            if lease is victim:
                del self._conversations[conversation]
                self._lost[conversation] = None
                while len(self._lost) > MAX_REMEMBERED_LOSSES:
                    self._lost.popitem(last=False)
                log.info("sandbox: conversation %s of %r gives up its idle kernel", conversation, victim.account)
        victim.evicted = True
        await self._dispose(victim.kernel, keep_slot=True)
        kernel = await self._take(have_slot=True)
        assert kernel is not None  # with a slot in hand, a kernel or an exception
        return kernel

    async def _replace_dead(self, conversation: str, lease: _Lease) -> None:
        await self._dispose(lease.kernel, keep_slot=True)
        try:
            kernel = await self._take(have_slot=True)
        except BaseException:
            if self._conversations.get(conversation) is lease:
                del self._conversations[conversation]
            lease.evicted = True
            raise
        assert kernel is not None
        lease.kernel = kernel

    async def _take(self, *, have_slot: bool) -> SandboxedKernel | None:
        """A kernel for a new lease: a pre-started one, else a new one. ``have_slot``: the caller holds a slot
        (given back if a pre-started kernel is used). None only without a slot, when the pool is full."""
        while self._ready:
            kernel = self._ready.pop(0)
            if kernel.alive:
                if have_slot:
                    self._free_slot()
                self._refill_soon()
                return kernel
            await self._dispose(kernel, keep_slot=not have_slot)
            have_slot = True
        if not have_slot and not self._reserve_slot():
            return None
        kernel = await self._new_kernel()
        self._refill_soon()
        return kernel

    def _reserve_slot(self) -> bool:
        if self._slots >= self.max_kernels:
            return False
        self._slots += 1
        return True

    def _free_slot(self) -> None:
        self._slots -= 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _new_kernel(self) -> SandboxedKernel:
        """A started kernel in the slot the caller reserved (freed again if it fails)."""
        kernel: SandboxedKernel | None = None
        uid: int | None = None
        try:
            uid = self._next_uid()
            self._uids_in_use.add(uid)
            try:
                cgroup = self._cgroup(uid)
            except OSError as exc:
                raise KernelStartError(f"cannot make the sandboxed kernel's cgroup: {exc}") from None
            kernel = SandboxedKernel(
                self.policy, self.root / secrets.token_hex(8), uid, [str(self.root), *self.hidden], cgroup
            )
            await kernel.start()
        except BaseException:
            if kernel is not None:
                await self._dispose(kernel)
            else:
                if uid is not None:
                    self._free_uid(uid)
                self._free_slot()
            raise
        return kernel

    def _cgroup(self, uid: int) -> KernelCgroup | None:
        if self.cgroups is None:
            return None
        policy = self.policy
        limits = Limits(memory_bytes=policy.memory_bytes, cpus=policy.cpus, processes=policy.processes)
        return self.cgroups.create(f"k{uid}-{secrets.token_hex(4)}", limits)

    def _next_uid(self) -> int:
        """A uid no other kernel on this machine has, in this server or another: claimed with an flock on a file
        in a directory shared by every server, held while the kernel lives (and dropped by the OS if the server
        dies). Uids also rotate, so a freed one is not handed out while its last processes may still exit."""
        span = UID_SPAN_PER_KERNEL * self.max_kernels
        UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
        for _ in range(span):
            uid = self.policy.base_uid + self._uid_cursor % span
            self._uid_cursor += 1
            if uid in self._uids_in_use:
                continue
            fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._uid_locks[uid] = fd
            return uid
        raise RuntimeError("no free sandbox uid")

    def _remove_stale_workspaces(self) -> None:
        """Workspaces a crashed server left mounted. A workspace belongs to its kernel's uid, whose lock a live
        server holds (another server may share this root): one whose uid lock is free belongs to nobody."""
        UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
        for workspace in self.root.iterdir():
            try:
                uid = workspace.lstat().st_uid
            except OSError:
                continue
            fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live kernel's
            else:
                log.info("removing the stale sandbox workspace %s", workspace)
                remove_workspace(workspace)
            finally:
                os.close(fd)

    def _free_uid(self, uid: int) -> None:
        self._uids_in_use.discard(uid)
        fd = self._uid_locks.pop(uid, None)
        if fd is not None:
            os.close(fd)  # closing the file releases its lock

    async def _dispose(self, kernel: SandboxedKernel, *, keep_slot: bool = False) -> None:
        """Shut ``kernel`` down and free its uid and (unless the caller reuses it) its slot."""
        try:
            await kernel.shutdown()  # waits until the uid's processes are gone; removes its cgroup
            kernel.remove_workspace()
        finally:
            self._free_uid(kernel.uid)
            if not keep_slot:
                self._free_slot()

    def _refill_soon(self) -> None:
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._refill())

    async def _refill(self) -> None:
        # Conversations waiting for room come first: a warm kernel would only take a slot from them.
        while len(self._ready) < self.warm and not self._queued and self._reserve_slot():
            try:
                self._ready.append(await self._new_kernel())
            except Exception:
                log.exception("could not pre-start a sandboxed kernel")
                return

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.idle_seconds / 2))
            await self.reap()

    async def reap(self) -> None:
        """Shut down the kernels of conversations idle for longer than ``idle_seconds``."""
        cutoff = time.monotonic() - self.idle_seconds
        for conversation, lease in list(self._conversations.items()):
            if lease.last_used < cutoff and lease.idle:
                await self.release(conversation)


def _longest_idle(leases: list[_Lease]) -> _Lease | None:
    idle = [lease for lease in leases if lease.idle]
    return min(idle, key=lambda lease: lease.last_used) if idle else None
