"""Forward passes of a local embedding model, coalesced across requests.

One thread runs everything that touches the model (loading, tokenizing, forward passes), so the event loop never
waits on it and the tokenizer is never used from two threads. Requests queue their texts; when a pass starts it
takes up to ``batch_size`` of the texts waiting, one from each request in turn, so concurrent requests share a
pass and a request with thousands of inputs does not hold up a small one. A request that goes away (its client
left) loses its place: its texts still waiting are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..errors import EngineError, OpenGLMError

log = logging.getLogger(__name__)
T = TypeVar("T")
Vectors = NDArray[np.float32]


@dataclass
class PassStats:
    passes: int = 0
    texts: int = 0
    largest: int = 0  # texts in the largest pass so far


class _Job:
    """One request's texts and the rows computed for them so far."""

    def __init__(self, texts: list[str], future: asyncio.Future[Vectors]):
        self.texts = texts
        self.future = future
        self.next = 0  # the next text to hand to a pass
        self._rows: list[Vectors | None] = [None] * len(texts)
        self._filled = 0

    @property
    def waiting(self) -> bool:
        return self.next < len(self.texts) and not self.future.done()

    def put(self, index: int, row: Vectors) -> None:
        self._rows[index] = row
        self._filled += 1
        if self._filled == len(self.texts) and not self.future.done():
            self.future.set_result(np.stack([r for r in self._rows if r is not None]))

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class BatchWorker:
    def __init__(self, forward: Callable[[list[str]], Vectors], *, batch_size: int, name: str):
        self._forward = forward
        self.batch_size = max(1, batch_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._jobs: deque[_Job] = deque()
        self._task: asyncio.Task[None] | None = None
        self.stats = PassStats()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the model's thread, in turn with the forward passes."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts``, one row each, in order."""
        job = _Job(list(texts), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await job.future

    def _take(self) -> list[tuple[_Job, int]]:
        """The next pass: up to batch_size texts, one from each waiting request in turn."""
        self._jobs = deque(job for job in self._jobs if not job.future.done())
        batch: list[tuple[_Job, int]] = []
        while len(batch) < self.batch_size:
            waiting = [job for job in self._jobs if job.waiting]
            if not waiting:
                break
            for job in waiting[: self.batch_size - len(batch)]:
                batch.append((job, job.next))
                job.next += 1
        return batch

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                await self._run_pass(batch)
        finally:  # cancelled (shutdown): nobody is left to finish what waits
            for job in self._jobs:
                job.fail(EngineError("the embedding model was shut down"))

    async def _run_pass(self, batch: list[tuple[_Job, int]]) -> None:
        texts = [job.texts[index] for job, index in batch]
        try:
            vectors = await self.call(self._forward, texts)
            if len(vectors) != len(texts):
                raise EngineError(f"the embedding model gave {len(vectors)} vectors for {len(texts)} texts")
        except Exception as exc:
            log.exception("embedding forward pass failed")
            error = exc if isinstance(exc, OpenGLMError) else EngineError(f"the embedding model failed: {exc}")
            for job, _ in batch:
                job.fail(error)
            return
        self.stats.passes += 1
        self.stats.texts += len(texts)
        self.stats.largest = max(self.stats.largest, len(texts))
        for (job, index), row in zip(batch, vectors, strict=True):
            job.put(index, row)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # Waits for a pass already running (it cannot be interrupted), off the loop, so the model can be freed.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
