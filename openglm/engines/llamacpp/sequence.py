"""One generation inside the batch scheduler, and the asyncio handle that reads it."""

from __future__ import annotations

import asyncio
import codecs
import itertools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..base import GenerationChunk, GenerationHandle
from .sampling import SamplerChain
from .speculative import DraftStats

if TYPE_CHECKING:
    from .adapters import LoadedAdapter, LoraKey
    from .vision import Placed

_admission_counter = itertools.count()


class Sequence:
    """State the decode thread owns; ``tokens[:n_past]`` are in the KV cache."""

    def __init__(
        self,
        *,
        prompt: list[int],
        max_tokens: int,
        limit: int,
        sampler: SamplerChain,
        stop_ids: frozenset[int],
        logprobs: bool,
        top_logprobs: int,
        loop: asyncio.AbstractEventLoop,
        adapter: LoadedAdapter | None = None,
        scale: float = 1.0,
        background: bool = False,
        pictures: list[Placed] | None = None,
    ):
        self.tokens = list(prompt)
        self.background = background  # a batch line: served after, and paused for, interactive sequences
        self.prompt_len = len(prompt)
        self.max_tokens = max_tokens
        self.limit = limit
        self.sampler = sampler
        self.stop_ids = stop_ids
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.loop = loop
        self.queue: asyncio.Queue[GenerationChunk | BaseException] = asyncio.Queue()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.n_past = 0
        self.n_generated = 0
        self.slot = -1
        self.order = next(_admission_counter)
        self.feeding = 0
        self.cancelled = False
        self.finished = False
        self.draft: list[int] = []
        self.draft_stats = DraftStats()
        # The LoRA adapter this sequence is decoded with (held until ``close``), and what its KV depends on.
        self.adapter = adapter
        self.scale = scale
        self.lora_key: LoraKey = None if adapter is None else (adapter.key, adapter.path, scale)
        # Images in the prompt (positions of their placeholder ids in ``tokens``), in order; owned until ``close``.
        self.pictures = pictures or []
        self._closed = False

    def close(self) -> None:
        """Free the sampler and let go of the adapter; once, whichever way the sequence ends."""
        if self._closed:
            return
        self._closed = True
        self.sampler.close()
        if self.adapter is not None:
            self.adapter.release()
        for placed in self.pictures:
            placed.picture.close()

    def next_picture(self) -> Placed | None:
        """The first image not wholly in the KV cache yet."""
        return next((p for p in self.pictures if p.end > self.n_past), None)

    def feedable(self) -> int:
        """Tokens the next decode may take from the prompt: up to the next image, which is decoded on its own."""
        picture = self.next_picture()
        return self.pending if picture is None else max(picture.start - self.n_past, 0)

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.n_past

    @property
    def remaining(self) -> int:
        return self.max_tokens - self.n_generated


class LlamaHandle(GenerationHandle):
    def __init__(self, seq: Sequence, cancel: Callable[[Sequence], None]):
        self.seq = seq
        self.prompt_tokens = seq.prompt_len
        self._cancel = cancel
        self._done = False

    def __aiter__(self) -> AsyncIterator[GenerationChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerationChunk]:
        try:
            while True:
                item = await self.seq.queue.get()
                if isinstance(item, BaseException):
                    self._done = True
                    raise item
                yield item
                if item.finish_reason is not None:
                    self._done = True
                    return
        finally:
            if not self._done:
                self.cancel()

    def cancel(self) -> None:
        self._done = True
        self._cancel(self.seq)
