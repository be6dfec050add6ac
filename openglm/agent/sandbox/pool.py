"""Kernels kept warm, one per conversation, reaped when idle.

``acquire(conversation)`` gives the conversation's own kernel (state carries over between calls), or hands it a
pre-started one, so the first run of a conversation does not wait for a kernel to boot; the pool refills itself
in the background. A kernel that died is replaced on the next acquire.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .kernel import SandboxedKernel, remove_workspace
from .policy import SandboxPolicy

log = logging.getLogger(__name__)
UID_SPAN_PER_KERNEL = 64
UID_LOCKS = Path("/run/openglm-sandbox-uids")


@dataclass
class _Lease:
    kernel: SandboxedKernel
    last_used: float
    lock: asyncio.Lock


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
    ):
        self.policy = policy
        self.root = root  # workspaces live under root/<kernel id>
        self.warm = warm
        self.max_kernels = max_kernels
        self.idle_seconds = idle_seconds
        self.hidden = hidden or []
        self._ready: list[SandboxedKernel] = []
        self._conversations: dict[str, _Lease] = {}
        self._uids_in_use: set[int] = set()
        self._uid_locks: dict[int, int] = {}
        self._uid_cursor = secrets.randbelow(UID_SPAN_PER_KERNEL * max_kernels)
        self._refilling: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._leasing = asyncio.Lock()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # kernels reach their own workspace, cannot list the others
        self._remove_stale_workspaces()
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

    @contextlib.asynccontextmanager
    async def session(self, conversation: str):  # type: ignore[no-untyped-def]
        """The conversation's kernel, held for one run (runs of one conversation never overlap)."""
        lease = await self._lease(conversation)
        async with lease.lock:
            if not lease.kernel.alive:  # it died (limits, a kill): a fresh one, state lost
                await self._dispose(lease.kernel)
                lease.kernel = await self._take()
            try:
                yield lease.kernel
            finally:
                lease.last_used = time.monotonic()

    async def release(self, conversation: str) -> None:
        lease = self._conversations.pop(conversation, None)
        if lease is not None:
            async with lease.lock:
                await self._dispose(lease.kernel)

    def workspace_of(self, conversation: str) -> Path | None:
        lease = self._conversations.get(conversation)
        return lease.kernel.workspace if lease else None

    async def _lease(self, conversation: str) -> _Lease:
        async with self._leasing:  # two first requests of one conversation must not both take a kernel
            lease = self._conversations.get(conversation)
            if lease is None:
                lease = _Lease(await self._take(), time.monotonic(), asyncio.Lock())
                self._conversations[conversation] = lease
        return lease

    async def _take(self) -> SandboxedKernel:
        kernel = self._ready.pop(0) if self._ready else None
        self._refill_soon()
        if kernel is not None and kernel.alive:
            return kernel
        if kernel is not None:
            await self._dispose(kernel)
        return await self._new_kernel()

    async def _new_kernel(self) -> SandboxedKernel:
        if len(self._uids_in_use) >= self.max_kernels:
            raise RuntimeError(f"all {self.max_kernels} sandboxed kernels are in use")
        uid = self._next_uid()
        self._uids_in_use.add(uid)
        kernel = SandboxedKernel(self.policy, self.root / secrets.token_hex(8), uid, [str(self.root), *self.hidden])
        try:
            await kernel.start()
        except BaseException:
            kernel.remove_workspace()
            self._free_uid(uid)
            raise
        return kernel

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

    async def _dispose(self, kernel: SandboxedKernel) -> None:
        await kernel.shutdown()  # waits until the uid's processes are gone
        kernel.remove_workspace()
        self._free_uid(kernel.uid)

    def _refill_soon(self) -> None:
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._refill())

    async def _refill(self) -> None:
        while len(self._ready) < self.warm and len(self._uids_in_use) < self.max_kernels:
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
            if lease.last_used < cutoff and not lease.lock.locked():
                await self.release(conversation)
