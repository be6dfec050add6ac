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

Who gets which kernel is decided without an await between reading the pool's state and changing it (one
event loop: such a step cannot interleave with another), so no lock is held while kernels shut down or boot:
a run in a conversation that has its kernel never waits for another conversation's kernel to start. Requests
for a conversation whose kernel is starting share that start. A kernel's processes run only during its runs:
between them its cgroup is frozen (``SandboxedKernel.suspend``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConcurrencyLimitError
from .cgroups import CgroupTree, KernelCgroup, Limits, open_tree
from .kernel import KernelStartError, SandboxedKernel, remove_cgroup, remove_workspace
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


@dataclass
class _Plan:
    """How a new conversation gets its kernel. ``kernel``: a pre-started one, handed over as it is; ``victim``:
    a kernel taken over, shut down first, whose slot the new kernel takes; neither: a slot reserved for a new one."""

    kernel: SandboxedKernel | None = None
    victim: SandboxedKernel | None = None


@dataclass
class _Starting:
    """A new conversation's kernel on its way; other requests of the conversation wait for it."""

    account: str
    done: asyncio.Future[None]


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
        total: Limits | None = None,
    ):
        self.policy = policy
        self.root = root  # workspaces live under root/<kernel id>
        self.warm = warm
        self.max_kernels = max_kernels
        self.idle_seconds = idle_seconds
        self.hidden = hidden or []
        self.kernels_per_account = min(kernels_per_account or max(1, max_kernels // 2), max_kernels)
        self.queue_seconds = queue_seconds
        self.total = total  # CPU and memory for all the pool's kernels together (where cgroups exist)
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
        self._starting: dict[str, _Starting] = {}  # conversation -> its kernel being taken over or started
        self._background: set[asyncio.Task[None]] = set()  # shutdowns no caller waits for (or that outlive one)
        self.cgroups: CgroupTree | None = None
        # Workspaces are unmounted at once but their mount points removed only while no kernel is starting: a
        # starting kernel's bwrap copies the server's mounts (every workspace among them), then remounts each
        # read-only; a mount point removed in between is detached from that copy, the remount fails and so did
        # the kernel ("Can't bind mount /oldroot/ on /newroot/: … remount …/sandboxes/<id>: No such file").
        self._kernels_starting = 0
        self._empty_workspaces: list[Path] = []

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # kernels reach their own workspace, cannot list the others
        self._remove_stale_workspaces()
        self.cgroups, how = await asyncio.get_running_loop().run_in_executor(None, open_tree)
        if self.cgroups is None:
            log.warning("no per-kernel cgroups (%s): sandboxed kernels have per-process rlimits only", how)
        else:
            log.info("sandboxed kernels get cgroup %s limits (%s)", how, self.cgroups.name)
            if self.total is not None:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.cgroups.limit_pool, self.total)
                except OSError as exc:
                    log.warning("could not limit the sandbox pool as a whole (%s): per-kernel limits only", exc)
        self._refill_soon()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        for task in (self._refilling, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Kernels on their way land in the books first (or fail), so that they are shut down with the others.
        await asyncio.gather(*(asyncio.shield(s.done) for s in self._starting.values()), return_exceptions=True)
        kernels = [*self._ready, *(lease.kernel for lease in self._conversations.values())]
        self._ready.clear()
        self._conversations.clear()
        await asyncio.gather(*(self._dispose(k) for k in kernels), return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
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
                        await lease.kernel.suspend()  # (done already when the run ended in execute)
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
                lease = self._conversations.get(conversation)
                if lease is not None:
                    lease.users += 1
                    return lease
                starting = self._starting.get(conversation)
                if starting is not None:  # another request of this conversation is getting its kernel: share it
                    await asyncio.shield(starting.done)
                    continue
                plan = self._plan(account)
                if plan is not None:
                    return await self._open(conversation, account, plan)
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
                    await asyncio.wait_for(self._changed.wait(), left)
        finally:
            if queued:
                self._queued -= 1

    def _plan(self, account: str) -> _Plan | None:
        """A kernel for a new conversation of ``account``, by the fair-share rules; None: wait for one. Decided
        and recorded in one step (no await): a victim leaves the pool's books, a slot is reserved."""
        held = self._held()
        own = [lease for lease in self._conversations.values() if lease.account == account]
        if held[account] >= self.kernels_per_account:
            victim = _longest_idle(own)
            return None if victim is None else self._evict(victim)
        kernel = self._pop_ready()
        if kernel is not None:
            return _Plan(kernel=kernel)
        if self._reserve_slot():
            return _Plan()
        # The pool is full: an idle kernel of an account over its fair share, else one of the account's own.
        victim = _longest_idle(self._over_fair_share(account, held)) or _longest_idle(own)
        return None if victim is None else self._evict(victim)

    def _held(self) -> Counter[str]:
        """Kernels per account, those on their way included."""
        held = Counter(lease.account for lease in self._conversations.values())
        held.update(starting.account for starting in self._starting.values())
        return held

    def _over_fair_share(self, newcomer: str, held: Counter[str]) -> list[_Lease]:
        """Leases of accounts holding more than the pool divided evenly between them and ``newcomer``."""
        share = self.max_kernels / len(set(held) | {newcomer})
        return [lease for lease in self._conversations.values() if held[lease.account] > share]

    def _evict(self, victim: _Lease) -> _Plan:
        """Take ``victim``'s kernel (idle) away from its conversation, which is told on its next run."""
        for conversation, lease in list(self._conversations.items()):
            if lease is victim:
                del self._conversations[conversation]
                self._lost[conversation] = None
                while len(self._lost) > MAX_REMEMBERED_LOSSES:
                    self._lost.popitem(last=False)
                log.info("sandbox: conversation %s of %r gives up its idle kernel", conversation, victim.account)
        victim.evicted = True
        return _Plan(victim=victim.kernel)

    async def _open(self, conversation: str, account: str, plan: _Plan) -> _Lease:
        """Carry ``plan`` out (shutting down and booting outside any lock) and give the conversation its lease;
        the conversation's other requests meanwhile wait for this one (and share its failure)."""
        starting = _Starting(account, asyncio.get_running_loop().create_future())
        self._starting[conversation] = starting
        try:
            kernel = await self._carry_out(plan)
        except Exception as exc:
            starting.done.set_exception(exc)
            starting.done.exception()  # retrieved: nobody may be waiting
            raise
        except BaseException:
            starting.done.set_result(None)  # this request went away: a waiting one starts the kernel itself
            raise
        finally:
            del self._starting[conversation]
        lease = _Lease(kernel, account, time.monotonic(), users=1)
        lease.state_lost = self._lost.pop(conversation, False) is None
        self._conversations[conversation] = lease
        starting.done.set_result(None)
        self._refill_soon()  # a slot may have come free since the warm kernels were last topped up
        return lease

    async def _carry_out(self, plan: _Plan) -> SandboxedKernel:
        if plan.kernel is not None:
            return plan.kernel
        if plan.victim is not None:
            ready = self._pop_ready()
            if ready is not None:  # no need to wait for the victim's shutdown: it frees its slot when done
                self._in_background(self._dispose(plan.victim))
                return ready
            try:
                await self._dispose(plan.victim, keep_slot=True)
            except asyncio.CancelledError:
                raise  # the shutdown goes on, and gives the slot back itself
            except BaseException:
                self._free_slot()
                raise
            return await self._kernel_in_slot()
        return await self._new_kernel()

    async def _replace_dead(self, conversation: str, lease: _Lease) -> None:
        try:
            try:
                await self._dispose(lease.kernel, keep_slot=True)
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._free_slot()
                raise
            lease.kernel = await self._kernel_in_slot()
        except BaseException:
            if self._conversations.get(conversation) is lease:
                del self._conversations[conversation]
            lease.evicted = True
            raise

    async def _kernel_in_slot(self) -> SandboxedKernel:
        """A kernel for the slot the caller holds: a pre-started one (the slot given back), else a new one."""
        kernel = self._pop_ready()
        if kernel is not None:
            self._free_slot()
            return kernel
        return await self._new_kernel()

    def _pop_ready(self) -> SandboxedKernel | None:
        """A pre-started kernel, if one is alive (the dead are shut down in the background)."""
        while self._ready:
            kernel = self._ready.pop(0)
            if kernel.alive:
                self._refill_soon()
                return kernel
            self._in_background(self._dispose(kernel))
        return None

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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
        cgroup: KernelCgroup | None = None
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
            with self._kernel_starting():
                await kernel.start()
        except BaseException:
            if kernel is not None:
                await self._dispose(kernel)  # removes its cgroup too
            else:
                if cgroup is not None:
                    await asyncio.get_running_loop().run_in_executor(None, remove_cgroup, cgroup)
                if uid is not None:
                    self._free_uid(uid)
                self._free_slot()
            raise
        return kernel

    def _cgroup(self, uid: int) -> KernelCgroup | None:
        if self.cgroups is None:
            return None
        policy = self.policy
        cpus = policy.cpus
        if self.total is not None and self.total.cpus is not None:
            cpus = min(cpus, self.total.cpus)  # v1 refuses a child's CPU quota above its parent's
        limits = Limits(memory_bytes=policy.memory_bytes, cpus=cpus, processes=policy.processes)
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

    @contextlib.contextmanager
    def _kernel_starting(self) -> Iterator[None]:
        self._kernels_starting += 1
        try:
            yield
        finally:
            self._kernels_starting -= 1
            self._remove_when_no_kernel_starts()

    def _remove_when_no_kernel_starts(self, *mount_points: Path) -> None:
        """Remove these unmounted workspaces' mount points, and those left earlier, once no kernel is starting."""
        self._empty_workspaces += mount_points
        if self._kernels_starting:
            return
        for path in self._empty_workspaces:
            shutil.rmtree(path, ignore_errors=True)
        self._empty_workspaces.clear()

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
        """Shut ``kernel`` down and free its uid and (unless the caller reuses it) its slot. The shutdown runs
        to its end even if the caller is cancelled meanwhile; the slot then goes back to the pool."""
        keep = keep_slot

        async def shut_down() -> None:
            try:
                await kernel.shutdown()  # waits until the uid's processes are gone; removes its cgroup
                kernel.unmount_workspace()
                self._remove_when_no_kernel_starts(kernel.workspace)
            finally:
                self._free_uid(kernel.uid)
                if not keep:
                    self._free_slot()

        task = self._in_background(shut_down())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if keep and task.done():
                self._free_slot()  # kept for a caller that is gone
            keep = False  # still shutting down: it gives the slot back itself
            raise

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
