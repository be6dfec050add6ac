"""Killable worker processes with a time and memory budget per call, for work on untrusted input.

A thread cannot be stopped and holds the GIL through a long regex or a C parser, so a hostile document parsed in
one stalls every request of every tenant. Here each call runs in a worker process (``worker.py``) whose address
space is capped (``RLIMIT_AS``); a call that passes its deadline, or is cancelled, gets its worker killed and a
fresh one started for the next call. A crash (a segfault in a C library, an abort on allocation failure) costs
only that call. Results come back through ``transfer.load_result`` (plain data and registered classes only).

One pool serves the process (``shared_pool``): like the default thread executor it is infrastructure, configured
once from the settings at start-up (``configure``) and closed with the app (``shutdown``). Workers start on first
use, so a server that never parses anything pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import DocumentError, InternalError, InvalidFieldError, OpenGLMError, ServiceUnavailableError
from .transfer import load_result
from .worker import HEADER, READY

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_REPLY_BYTES = 512 * 1024 * 1024  # a reply's declared size is checked before the server allocates it
JOBS_PER_WORKER = 200  # a worker is replaced after this many calls, so a slow leak in a library cannot grow
START_TIMEOUT = 120.0  # seconds for a new worker to import its libraries (slow only on a loaded machine)
# Imported by each worker before it takes calls, so the first call is not charged for them.
PRELOAD = (
    "openglm.knowledge.formats",
    "openglm.agent.browser.extract",
    "openglm.serving.grammar",
    "openglm.untrusted.loaders",
    "llama_cpp.llama_grammar",
    "trafilatura",
    "lxml.etree",
    "docx",
    "openpyxl",
    "pypdf",
    "yaml",
)


# The account a call works for: set once per request (api/request_guard.py) and per ingested document, so every
# call below it (parsers, the browser, grammars, OpenAPI documents) is counted against that account's share.
_account: ContextVar[str | None] = ContextVar("openglm_untrusted_account", default=None)


@contextlib.contextmanager
def on_behalf_of(account_id: str | None) -> Iterator[None]:
    """Calls made inside (and in tasks started inside) count against ``account_id``'s share of the workers."""
    token = _account.set(account_id)
    try:
        yield
    finally:
        _account.reset(token)


@dataclass(eq=False)
class _Share:
    """One account's slots: at most half the workers (rounded up), so another account always finds one free."""

    slots: asyncio.Semaphore
    users: int = 0  # calls holding or waiting for a slot; the share is dropped at 0


class WorkLimitError(InvalidFieldError):
    """A call on untrusted input ran past its time or memory budget (or crashed its worker): it was stopped."""


class _WorkerDied(Exception):
    pass


@dataclass(eq=False)  # identity: workers live in a set
class _Worker:
    """A worker process and its pipes. Plain pipes read by a thread, not asyncio transports: a worker serves
    whichever event loop calls next (tests run many), and nothing of it needs a loop to be closed."""

    process: subprocess.Popen[bytes]
    calls: int = 0

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def send(self, body: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(HEADER.pack(len(body)) + body)
            stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: closed after a kill
            raise _WorkerDied from None

    def receive(self) -> bytes:
        stdout = self.process.stdout
        assert stdout is not None
        header = stdout.read(HEADER.size)
        if len(header) < HEADER.size:
            raise _WorkerDied
        (size,) = HEADER.unpack(header)
        if size > MAX_REPLY_BYTES:
            raise _WorkerDied
        body = stdout.read(size)
        if len(body) < size:
            raise _WorkerDied
        return body

    def exchange(self, request: bytes) -> bytes:
        self.send(request)
        return self.receive()


class UntrustedPool:
    def __init__(
        self, *, workers: int = 2, memory_mb: int = 1024, timeout: float = 30.0, preload: tuple[str, ...] = PRELOAD
    ):
        self.workers = workers
        self.preload = preload
        self.memory_mb = memory_mb
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._shares: dict[str, _Share] = {}
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting: set[_Worker] = set()  # started, not yet ready: close() must find them too
        self._threads: ThreadPoolExecutor | None = None

    async def run(self, function: Callable[..., T], *args: Any, what: str, timeout: float | None = None) -> T:
        """``function(*args)`` in a worker. ``function`` must be importable by name (a module-level function);
        ``what`` names the input in errors ("the document"). Raises what the function raised (platform errors
        keep their code and message), ``WorkLimitError`` past the deadline or the memory limit."""
        slots = self._bind()
        limit = self.timeout if timeout is None else timeout
        # Before a worker is taken: arguments that cannot be sent must not strand a worker outside the pool.
        request = pickle.dumps((function.__module__, function.__qualname__, args), protocol=5)
        account = _account.get()
        share = self._share(account)
        try:
            result: T = await self._run_in_share(slots, share, request, what, limit)
            return result
        finally:
            if share is not None and account is not None:
                share.users -= 1
                if share.users == 0 and self._shares.get(account) is share:
                    del self._shares[account]

    async def _run_in_share(
        self, slots: asyncio.Semaphore, share: _Share | None, request: bytes, what: str, limit: float
    ) -> Any:
        """The call, once it holds one of its account's slots (its own queue) and then one of the pool's."""
        try:  # every worker busy: wait at most for one worker to be replaced and one call to run
            async with asyncio.timeout(START_TIMEOUT + limit):
                if share is not None:
                    await share.slots.acquire()
                try:
                    await slots.acquire()
                except BaseException:
                    if share is not None:
                        share.slots.release()
                    raise
        except TimeoutError:
            raise ServiceUnavailableError("the server is busy parsing other input; try again shortly") from None
        try:
            return await self._call(slots, request, what, limit)
        finally:
            if share is not None:
                share.slots.release()

    async def _call(self, slots: asyncio.Semaphore, request: bytes, what: str, limit: float) -> Any:
        """Runs the call on a worker; ``slots`` (held) is released on the way out."""
        try:
            worker = await self._take()  # no await between taking it and marking it busy
            self._busy.add(worker)
            try:
                reply = await asyncio.wait_for(self._in_thread(worker.exchange, request), limit)
            except TimeoutError:
                self._retire(worker)
                raise WorkLimitError(f"{what} took longer than {limit:g} s to process and was stopped") from None
            except _WorkerDied:
                self._retire(worker)
                code = await self._in_thread(worker.process.wait)
                log.warning("a worker died (exit status %s) while processing %s", code, what)
                raise WorkLimitError(
                    f"{what} could not be processed within the server's limits (the parser ran out of memory "
                    "or failed) and was stopped"
                ) from None
            except BaseException:  # cancelled: the call may still be running; nothing else may use this worker
                self._retire(worker)
                raise
            self._busy.discard(worker)
            worker.calls += 1
            try:
                status, value = load_result(reply)
            except Exception as exc:
                self._retire(worker)
                raise InternalError(f"a parsing worker sent an unreadable reply ({exc})") from None
            if (status == "error" and value.get("kind") == "memory") or worker.calls >= JOBS_PER_WORKER:
                self._retire(worker)
            else:
                self._idle.append(worker)
        finally:
            slots.release()
        if status == "ok":
            return value
        raise _error(value, what)

    async def close(self) -> None:
        workers = [*self._idle, *self._busy, *self._starting]
        for worker in workers:
            self._retire(worker)
        self._idle.clear()
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await self._in_thread(worker.process.wait, 10)
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def _bind(self) -> asyncio.Semaphore:
        """The queue belongs to one event loop; a new loop (tests, a restarted app) gets a new one (the workers,
        idle between calls, serve any loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            self._loop, self._slots = loop, asyncio.Semaphore(self.workers)
            self._shares = {}
        return self._slots

    def _share(self, account_id: str | None) -> _Share | None:
        """The account's share, counted as used by one more call; None for work on no account's behalf."""
        if account_id is None:
            return None
        share = self._shares.get(account_id)
        if share is None:
            share = self._shares[account_id] = _Share(asyncio.Semaphore(max(1, math.ceil(self.workers / 2))))
        share.users += 1
        return share

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        if self._threads is None:  # its own threads: waiting on workers must not take the default executor's
            self._threads = ThreadPoolExecutor(max_workers=2 * self.workers + 2, thread_name_prefix="untrusted")
        return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    async def _take(self) -> _Worker:
        """An idle worker that is still alive (one may have been killed from outside), else a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.poll() is None:
                return worker
            self._retire(worker)  # reaped, not left a zombie
        return await self._start()

    async def _start(self) -> _Worker:
        """A new worker, once it says it is ready. Whatever ends the wait otherwise (its deadline, its death, the
        caller's cancellation) kills it: a worker nobody holds would live, unused, as long as the server."""
        command = [sys.executable, "-m", "openglm.untrusted.worker", str(self.memory_mb), *self.preload]
        worker = _Worker(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        self._starting.add(worker)
        try:
            ready = await asyncio.wait_for(self._in_thread(worker.receive), START_TIMEOUT)
        except (TimeoutError, _WorkerDied):
            ready = None
        except BaseException:  # cancelled while the worker imports its libraries
            self._retire(worker)
            raise
        finally:
            self._starting.discard(worker)
        if ready != READY:
            self._retire(worker)
            raise InternalError("a parsing worker could not start; see the server log")
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Kills the worker (its thread, if one waits on it, sees the pipe close) and reaps it in the background."""
        self._busy.discard(worker)
        worker.kill()
        threading.Thread(target=worker.process.wait, daemon=True).start()


def _error(details: dict[str, Any], what: str) -> OpenGLMError:
    kind = details.get("kind")
    message = str(details.get("message", ""))
    if kind == "document":
        return DocumentError(details["problem"], message)
    if kind == "platform":
        code, status = str(details["code"]), int(details["status"])
        if status == 400:
            return InvalidFieldError(message, code=code)
        return OpenGLMError(message, code=code, status=status)
    if kind == "memory":
        return WorkLimitError(f"{what} needs more memory to process than the server allows")
    if kind == "depth":
        return WorkLimitError(f"{what} is nested too deeply to process")
    log.error("a parsing worker failed on %s:\n%s", what, message)
    return InternalError(f"processing {what} failed; see the server log")


_shared = UntrustedPool()


def shared_pool() -> UntrustedPool:
    return _shared


def configure(*, workers: int, memory_mb: int, timeout: float) -> None:
    """Sets the shared pool's budget (from the settings, at start-up); running workers keep their old limit."""
    _shared.workers, _shared.memory_mb, _shared.timeout = workers, memory_mb, timeout


async def shutdown() -> None:
    await _shared.close()
