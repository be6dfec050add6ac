"""LoRA adapters on the engine's base model: loaded lazily, kept least-recently-used, freed when unused.

An adapter is loaded (``llama_adapter_lora_init``) in a worker thread the first time a request names it: not on
the event loop, and not in the decode thread, which keeps decoding meanwhile (loading reads the base model's
tensor shapes only). Concurrent requests for the same adapter share one load. Each sequence holds its adapter
(``users``) from submission until it finishes, is cancelled or fails, including while it waits or is preempted.
At most ``max_adapters`` stay loaded: past that, the least recently used adapters that no sequence holds are
doomed, and the decode thread frees them between decodes (``llama_adapter_lora_free``), after taking them off
the context. When every loaded adapter is in use, the cache stays over its bound until one is released.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

import llama_cpp as lc

from ...errors import AdapterLoadError, EngineError, InvalidFieldError
from ..base import AdapterRef
from .model import LlamaModel

log = logging.getLogger(__name__)

LoraKey = tuple[str, str, float] | None  # what KV values depend on: (key, path, scale), None for the base
if TYPE_CHECKING:
    AdapterPtr: TypeAlias = ctypes._Pointer[ctypes.c_void_p]  # llama_adapter_lora_init's restype: POINTER(c_void_p)


class LoadedAdapter:
    def __init__(self, cache: AdapterCache, ref: AdapterRef, ptr: AdapterPtr):
        self.cache = cache
        self.key = ref.key
        self.path = ref.path
        self.ptr = ptr
        self.users = 0

    def release(self) -> None:
        self.cache.release(self)


class _Loading:
    def __init__(self) -> None:
        self.future: concurrent.futures.Future[LoadedAdapter] = concurrent.futures.Future()
        self.waiters = 0


class AdapterCache:
    def __init__(self, model: LlamaModel, max_adapters: int, wake: Callable[[], None] = lambda: None):
        if max_adapters < 1:
            raise EngineError("max_adapters must be at least 1")
        self.model = model
        self.max_adapters = max_adapters
        self._wake = wake
        self._lock = threading.Condition()
        self._loaded: OrderedDict[tuple[str, str], LoadedAdapter] = OrderedDict()  # least recently used first
        self._loading: dict[tuple[str, str], _Loading] = {}
        self._doomed: list[LoadedAdapter] = []
        self._closed = False
        self.loads = 0

    @property
    def n_loaded(self) -> int:
        with self._lock:
            return len(self._loaded)

    @property
    def has_doomed(self) -> bool:
        return bool(self._doomed)

    # -- the event loop ---------------------------------------------------------------

    async def acquire(self, ref: AdapterRef) -> LoadedAdapter:
        """The loaded adapter, held for one sequence (``release`` it); loads it first if needed."""
        if not math.isfinite(ref.scale):
            raise InvalidFieldError(f"adapter {ref.key}: scale must be a finite number")
        ident = (ref.key, ref.path)
        with self._lock:
            if self._closed:
                raise EngineError("the engine is not running")
            adapter = self._loaded.get(ident)
            if adapter is not None:
                adapter.users += 1
                self._loaded.move_to_end(ident)
                return adapter
            loading = self._loading.get(ident)
            start = loading is None
            if loading is None:
                loading = self._loading[ident] = _Loading()
            loading.waiters += 1
        if start:
            threading.Thread(target=self._load, args=(ref, ident, loading), name="lora-load", daemon=True).start()
        try:
            # Shielded: a caller that goes away must not cancel the load the others wait for.
            return await asyncio.shield(asyncio.wrap_future(loading.future))
        except asyncio.CancelledError:
            with self._lock:
                if not loading.future.done():
                    loading.waiters -= 1  # the load will not count this caller
                    raise
            if loading.future.exception() is None:
                self.release(loading.future.result())  # it did: give the hold back
            raise

    # -- a loader thread ---------------------------------------------------------------

    def _load(self, ref: AdapterRef, ident: tuple[str, str], loading: _Loading) -> None:
        try:
            ptr = self._init(ref)
        except BaseException as exc:
            with self._lock:
                del self._loading[ident]
                loading.future.set_exception(exc)
                self._lock.notify_all()
            return
        with self._lock:
            del self._loading[ident]
            self._lock.notify_all()
            if self._closed:
                lc.llama_adapter_lora_free(ptr)
                loading.future.set_exception(EngineError("the engine is shutting down"))
                return
            adapter = LoadedAdapter(self, ref, ptr)
            adapter.users = loading.waiters  # every caller waiting now holds it: no eviction before they wake
            self._loaded[ident] = adapter
            self.loads += 1
            doomed = self._evict_locked()
            loading.future.set_result(adapter)
        if doomed:
            self._wake()

    def _init(self, ref: AdapterRef) -> AdapterPtr:
        # The error goes to the client (a fine-tuned model's caller): it names the adapter, never the server's paths,
        # which only the log gets.
        path = Path(ref.path)
        if not path.is_file():
            log.warning("adapter %s: file missing: %s", ref.key, ref.path)
            raise AdapterLoadError(f"adapter {ref.key}: its file is missing on this server")
        ptr = cast("AdapterPtr", lc.llama_adapter_lora_init(self.model.ptr, str(path).encode()))
        if not ptr:
            log.warning("adapter %s: llama.cpp cannot load %s", ref.key, ref.path)
            raise AdapterLoadError(
                f"adapter {ref.key}: llama.cpp cannot load its file as a LoRA adapter of this model "
                "(not a LoRA adapter GGUF, another architecture, or tensors that do not fit the base; see the log)"
            )
        return ptr

    # -- any thread ---------------------------------------------------------------------

    def release(self, adapter: LoadedAdapter) -> None:
        with self._lock:
            adapter.users -= 1
            doomed = self._evict_locked()
        if doomed:
            self._wake()

    def _evict_locked(self) -> bool:
        """Doom least recently used adapters nobody holds while over the bound; whether any was doomed."""
        doomed = False
        for ident, adapter in list(self._loaded.items()):
            if len(self._loaded) <= self.max_adapters:
                break
            if adapter.users == 0:
                del self._loaded[ident]
                self._doomed.append(adapter)
                doomed = True
        return doomed

    # -- the decode thread --------------------------------------------------------------

    def take_doomed(self) -> list[LoadedAdapter]:
        """Adapters to free: no sequence holds them, and no new one can acquire them."""
        with self._lock:
            doomed, self._doomed = self._doomed, []
        return doomed

    def close(self) -> list[LoadedAdapter]:
        """No more loads (waits for those under way); every adapter, to be freed once the context is gone."""
        with self._lock:
            self._closed = True
            while self._loading:
                self._lock.wait()
            everything = [*self._doomed, *self._loaded.values()]
            self._doomed, self._loaded = [], OrderedDict()
        return everything
