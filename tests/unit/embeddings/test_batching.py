"""BatchWorker: concurrent requests share forward passes, in turn, in order; cancelled requests lose their place;
failures reach the requests of the failed pass only."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from openglm.embeddings.batching import BatchWorker, Vectors
from openglm.errors import EngineError


class Forward:
    """A fake model: each text's vector is (its length, its first character); records every pass."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None, short: bool = False):
        self.delay, self.fail_on, self.short = delay, fail_on, short
        self.passes: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate: threading.Event | None = None  # when set up, every pass waits for it

    def __call__(self, texts: list[str]) -> Vectors:
        self.passes.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise RuntimeError("the model broke")
        rows = [[float(len(t)), float(ord(t[0]))] for t in texts]
        return np.array(rows[:-1] if self.short else rows, dtype=np.float32)


def expected(texts: list[str]) -> Vectors:
    return np.array([[float(len(t)), float(ord(t[0]))] for t in texts], dtype=np.float32)


async def test_requests_waiting_during_a_pass_share_the_next_one() -> None:
    forward = Forward(delay=0.1)
    worker = BatchWorker(forward, batch_size=32, name="embed-test")
    first = asyncio.create_task(worker.embed(["a"]))
    await asyncio.sleep(0.03)  # the first pass is running
    later = [f"text {n}" for n in range(6)]
    results = await asyncio.gather(first, *(worker.embed([t]) for t in later))
    assert forward.passes == [["a"], later]
    for texts, vectors in zip([["a"]] + [[t] for t in later], results, strict=True):
        assert np.array_equal(vectors, expected(texts))
    assert worker.stats.passes == 2 and worker.stats.texts == 7 and worker.stats.largest == 6
    assert forward.threads == {"embed-test_0"}  # one thread for every pass
    await worker.close()


async def test_a_big_request_takes_turns_with_small_ones() -> None:
    forward = Forward()
    worker = BatchWorker(forward, batch_size=4, name="embed-test")
    big = [f"big {n}" for n in range(10)]
    big_vectors, small_vectors = await asyncio.gather(worker.embed(big), worker.embed(["small"]))
    assert forward.passes[0] == ["big 0", "small", "big 1", "big 2"]  # not behind all ten
    assert [len(p) for p in forward.passes] == [4, 4, 3]
    assert np.array_equal(big_vectors, expected(big)) and np.array_equal(small_vectors, expected(["small"]))
    await worker.close()


async def test_a_cancelled_request_loses_its_waiting_texts() -> None:
    forward = Forward()
    forward.gate = threading.Event()
    worker = BatchWorker(forward, batch_size=2, name="embed-test")
    doomed = asyncio.create_task(worker.embed([f"doomed {n}" for n in range(8)]))
    while not forward.passes:  # the first pass is running (held at the gate)
        await asyncio.sleep(0.005)
    doomed.cancel()
    forward.gate.set()
    assert np.array_equal(await worker.embed(["next"]), expected(["next"]))
    assert forward.passes == [["doomed 0", "doomed 1"], ["next"]]
    await worker.close()


async def test_a_failed_pass_fails_its_requests_only() -> None:
    forward = Forward(fail_on="bad")
    worker = BatchWorker(forward, batch_size=8, name="embed-test")
    outcomes = await asyncio.gather(worker.embed(["bad"]), worker.embed(["fine"]), return_exceptions=True)
    assert all(isinstance(o, EngineError) and "the model broke" in o.message for o in outcomes)  # one pass
    assert np.array_equal(await worker.embed(["later"]), expected(["later"]))
    await worker.close()


async def test_a_pass_with_too_few_vectors_is_an_engine_error() -> None:
    worker = BatchWorker(Forward(short=True), batch_size=8, name="embed-test")
    with pytest.raises(EngineError, match="1 vectors for 2 texts"):
        await worker.embed(["a", "b"])
    await worker.close()


async def test_close_fails_what_is_waiting() -> None:
    forward = Forward(delay=0.05)
    forward.gate = threading.Event()
    worker = BatchWorker(forward, batch_size=1, name="embed-test")
    waiting = asyncio.create_task(worker.embed(["a", "b", "c"]))
    while not forward.passes:
        await asyncio.sleep(0.005)
    closing = asyncio.create_task(worker.close())
    await asyncio.sleep(0.01)
    forward.gate.set()  # the pass in flight ends; close waits for it, then nothing else runs
    await closing
    assert forward.passes == [["a"]]
    with pytest.raises(EngineError, match="shut down"):
        await waiting


async def test_call_runs_on_the_model_thread() -> None:
    worker = BatchWorker(Forward(), batch_size=1, name="embed-thread")
    assert await worker.call(lambda: threading.current_thread().name) == "embed-thread_0"
    await worker.close()
