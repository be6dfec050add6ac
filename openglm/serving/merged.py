"""Merged fine-tunes served as engines of their own, loaded on their first request.

A fine-tuned model that was merged (``tuning/merge_job.py``) resolves with ``merged_path``: a full GGUF, the base with
the adapter merged in. ``MergedEngines.get`` starts an engine of the base's kind on that file the first time the
model is asked for — the base's catalog entry (template, tool-call parser, options: threads, parallel sequences, KV
cache size) under the fine-tuned model's id, at the base's prices — and answers from it afterwards. What it costs:
a second copy of the weights (the merged file, mmapped) and a KV cache of the base's size, per merged model loaded.
So at most ``capacity`` (``OPENGLM_FINE_TUNING_MERGED_MODELS``) are loaded in a process; a merged model beyond that,
or one whose file cannot be loaded, is served as its adapter on the base (the same model, computed the other way)
and the log says why.

A model unmerged, merged again (another file) or deleted is **retired**: no new request gets its engine, and the
engine stops once its running and waiting generations are done. A replica learns of an unmerge or a new merge on
the model's next request (resolution reads the database every time); one that did not serve the deletion keeps a
deleted model's engine until it restarts (nothing can reach it: the model resolves to 1211).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..engines.base import Engine
from ..tuning.finetuned import AdapterTarget

log = logging.getLogger(__name__)
RETIRE_POLL_SECONDS = 0.5
RETIRE_MAX_SECONDS = 600.0  # a retired engine stops after this long even if generations are still running


Served = TypeVar("Served")  # what the pool hands out for a model (serving/models.py: ServedModel)


@dataclass
class MergedEntry(Generic[Served]):
    path: Path
    served: Served
    engine: Engine


class MergedEngines(Generic[Served]):
    def __init__(self, capacity: int, load: Callable[[AdapterTarget], Awaitable[tuple[Served, Engine]]]):
        self.capacity = capacity
        self._load = load
        self._entries: dict[str, MergedEntry[Served]] = {}
        self._refused: set[Path] = set()  # files that failed to load: not retried on every request
        self._lock = asyncio.Lock()  # one load at a time: each is a whole model
        self._retiring: dict[asyncio.Task[None], Engine] = {}

    def loaded(self, model: str) -> bool:
        return model in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, target: AdapterTarget) -> Served | None:
        """The merged model's ServedModel, loaded if needed; None: serve the adapter on the base instead."""
        path = target.merged_path
        entry = self._entries.get(target.model)
        if entry is not None and entry.path == path:
            return entry.served
        if entry is not None or path is None:
            self.retire(target.model)  # unmerged, or merged again into another file
        if path is None or path in self._refused or self.capacity <= 0:
            return None
        async with self._lock:
            entry = self._entries.get(target.model)
            if entry is not None and entry.path == path:
                return entry.served
            if len(self._entries) >= self.capacity:
                log.warning(
                    "%s: served as its adapter on the base: %d merged models are loaded already "
                    "(OPENGLM_FINE_TUNING_MERGED_MODELS)",
                    target.model,
                    len(self._entries),
                )
                return None
            began = time.monotonic()
            try:
                served, engine = await self._load(target)
            except Exception:
                log.exception("%s: its merged file cannot be loaded; served as its adapter on the base", target.model)
                self._refused.add(path)
                return None
            self._entries[target.model] = MergedEntry(path, served, engine)
            log.info("%s: merged model loaded in %.1f s (%s)", target.model, time.monotonic() - began, path.name)
            return served

    def retire(self, model: str) -> None:
        """No new request gets the model's engine; it stops once its generations are done."""
        entry = self._entries.pop(model, None)
        if entry is None:
            return
        task = asyncio.create_task(self._stop_when_idle(model, entry.engine), name=f"retire-{model}")
        self._retiring[task] = entry.engine
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _stop_when_idle(self, model: str, engine: Engine) -> None:
        deadline = time.monotonic() + RETIRE_MAX_SECONDS
        while time.monotonic() < deadline:
            stats = engine.stats()
            if stats.get("active", 0) + stats.get("waiting", 0) == 0:
                break
            await asyncio.sleep(RETIRE_POLL_SECONDS)
        await engine.stop()
        log.info("%s: merged model unloaded", model)

    async def stop(self) -> None:
        """Every engine stopped now, retiring ones included (the server is stopping)."""
        retiring = dict(self._retiring)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        engines = [*retiring.values(), *(entry.engine for entry in self._entries.values())]
        self._entries.clear()
        for engine in engines:
            await engine.stop()  # engines stop idempotently
