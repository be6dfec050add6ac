"""In-process llama.cpp engine with continuous batching."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ...catalog import ModelSpec, resolve_source
from ...errors import InvalidFieldError, PromptTooLongError, UnsupportedError
from ..base import Engine, GenerationHandle, GenerationRequest, engines

if TYPE_CHECKING:
    from ...config import Settings
    from .grammars import GrammarCache
    from .model import LlamaModel
    from .scheduler import BatchScheduler
    from .vision import Placed, Projector


log = logging.getLogger(__name__)
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
# Prompts longer than this are tokenized in a worker thread (llama_tokenize releases the GIL): ~32 KB takes
# ~15-20 ms on one core, and a request may bring 16 of them, all of which would otherwise stall every tenant.
INLINE_TOKENIZE_CHARS = 4096


@engines.register("llamacpp")
class LlamaCppEngine(Engine):
    """Options (catalog ``[models.options]``):

    threads, parallel (sequences decoded together), kv_tokens (KV cache size),
    batch_size (tokens per decode step), kv_unified (one KV pool shared by all
    sequences; false gives each sequence kv_tokens/parallel of its own, which
    makes attention cheaper at high concurrency but disables prefix reuse),
    flash_attn ("auto"|"on"|"off"), prefix_cache (reuse KV cells of prompts
    that start like an earlier or running one), draft_tokens (prompt-lookup
    speculative tokens per step, 0 disables) used while at most
    draft_max_batch sequences are running, max_adapters (LoRA adapters kept
    loaded, least recently used first out; see ``adapters.py``).

    With ``mmproj`` in the catalog the model sees: a request's images are read by
    the projector (``vision.py``) and decoded where they stand in the prompt.
    """

    serves_adapters = True

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        options = spec.options
        self.threads = int(options.get("threads", settings.threads))
        self.parallel = int(options.get("parallel", 16))
        self.kv_tokens = int(options.get("kv_tokens", max(spec.context_length, 4096)))
        self.batch_size = int(options.get("batch_size", 512))
        self.kv_unified = bool(options.get("kv_unified", True))
        self.flash_attn = FLASH_ATTN[str(options.get("flash_attn", "auto"))]
        self.prefix_cache = bool(options.get("prefix_cache", True))
        self.draft_tokens = int(options.get("draft_tokens", 0))
        self.draft_max_batch = int(options.get("draft_max_batch", 2))
        self.max_adapters = int(options.get("max_adapters", 8))
        self.model: LlamaModel | None = None
        self.scheduler: BatchScheduler | None = None
        self.grammars: GrammarCache | None = None
        self.projector: Projector | None = None
        self.takes_images = spec.mmproj is not None
        self._reading = asyncio.Lock()  # one request's images through the projector at a time

    async def start(self) -> None:
        from .grammars import GrammarCache
        from .model import LlamaModel
        from .scheduler import BatchScheduler
        from .vision import Projector

        path = resolve_source(self.spec.source)
        self.model = await asyncio.to_thread(LlamaModel, path)
        self.grammars = GrammarCache(self.model)
        if self.spec.mmproj is not None:
            self.projector = await asyncio.to_thread(
                Projector, resolve_source(self.spec.mmproj), self.model, self.threads
            )
        if not self.model.plain_kv_cache:
            # Recurrent, hybrid and sliding-window models cannot drop or share arbitrary cache cells.
            log.info("%s: prefix reuse and drafts are off for this architecture", self.spec.id)
            self.prefix_cache, self.draft_tokens = False, 0
        self.scheduler = BatchScheduler(
            self.model,
            threads=self.threads,
            parallel=self.parallel,
            kv_tokens=self.kv_tokens,
            batch_size=self.batch_size,
            kv_unified=self.kv_unified,
            flash_attn=self.flash_attn,
            prefix_cache=self.prefix_cache,
            draft_tokens=self.draft_tokens,
            draft_max_batch=self.draft_max_batch,
            max_adapters=self.max_adapters,
            projector=self.projector,
        )

    async def stop(self) -> None:
        if self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.close)
            self.scheduler = None
        self.grammars = None
        if self.projector is not None:
            self.projector.close()
            self.projector = None
        if self.model is not None:
            self.model.close()
            self.model = None

    @property
    def limit(self) -> int:
        """Tokens one sequence may hold: prompt and completion together."""
        per_sequence = self.kv_tokens if self.kv_unified else self.kv_tokens // self.parallel
        return min(self.spec.context_length, per_sequence)

    async def count_tokens(self, prompt: str) -> int:
        return len(await asyncio.to_thread(self.tokenize_prompt, prompt))  # a long prompt: off the event loop

    def tokenize_prompt(self, prompt: str) -> list[int]:
        model = self.model
        assert model is not None
        add_bos = model.adds_bos and not (model.bos_text and prompt.startswith(model.bos_text))
        return model.tokenize(prompt, add_special=add_bos, parse_special=True)

    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        if self.model is None or self.scheduler is None:
            raise RuntimeError("engine is not started")
        pictures: list[Placed] = []
        if request.images:
            prompt, pictures = await self._with_images(request)
        elif len(request.prompt) <= INLINE_TOKENIZE_CHARS:
            prompt = self.tokenize_prompt(request.prompt)
        else:
            prompt = await asyncio.to_thread(self.tokenize_prompt, request.prompt)
        try:
            return await self._submit(request, prompt, pictures)
        except BaseException:
            for placed in pictures:
                placed.picture.close()
            raise

    async def _with_images(self, request: GenerationRequest) -> tuple[list[int], list[Placed]]:
        """The prompt's tokens with each image's positions in place (a placeholder id at each), and where the
        images go; the images are read and encoded in a worker thread, the request's first error raised."""
        from .vision import Placed

        projector = self.projector
        if projector is None:
            raise UnsupportedError(f"model {self.spec.id} cannot see images (no mmproj in its catalog entry)")
        pieces = request.prompt.split(request.image_marker) if request.image_marker else [request.prompt]
        if len(pieces) != len(request.images) + 1:
            raise InvalidFieldError("the prompt does not place each of the request's images")

        def read() -> tuple[list[int], list[Placed]]:
            tokens = self.tokenize_prompt(pieces[0])
            placed: list[Placed] = []
            try:
                for number, (image, text) in enumerate(zip(request.images, pieces[1:], strict=True), start=1):
                    picture = projector.picture(image, number)
                    tokens += picture.before
                    placed.append(Placed(len(tokens), picture))
                    tokens += picture.placeholders + picture.after
                    tokens += self.model_tokenize(text)
            except BaseException:
                for done in placed:
                    done.picture.close()
                raise
            return tokens, placed

        async with self._reading:  # requests wait here, not in the shared thread pool, for the projector
            return await asyncio.to_thread(read)

    def model_tokenize(self, text: str) -> list[int]:
        """Text inside a prompt (after its start): no BOS, special tokens parsed as the template wrote them."""
        assert self.model is not None
        return self.model.tokenize(text, add_special=False, parse_special=True)

    async def _submit(self, request: GenerationRequest, prompt: list[int], pictures: list[Placed]) -> GenerationHandle:
        from .sampling import SamplerChain
        from .sequence import LlamaHandle, Sequence

        model, scheduler = self.model, self.scheduler
        assert model is not None and scheduler is not None
        if not prompt:
            raise InvalidFieldError("prompt is empty: there is nothing to continue from")
        room = self.limit - len(prompt)
        if room <= 0:
            raise PromptTooLongError(
                f"Prompt 超长 / prompt is too long: {len(prompt)} tokens, "
                f"model {self.spec.id} accepts at most {self.limit} tokens in total"
            )
        max_tokens = room if request.max_tokens is None else min(request.max_tokens, room)
        stop_ids = {model.special_token_id(marker) for marker in request.stop_markers}
        if request.grammar and self.grammars is not None:
            grammars, text = self.grammars, request.grammar

            def chain() -> SamplerChain:  # parsing (when not cached) and copying a grammar: not on the event loop
                return SamplerChain(model, request.sampling, grammars.get(text), request.grammar_triggers)

            sampler = await asyncio.to_thread(chain)
        else:
            sampler = SamplerChain(model, request.sampling, None)
        adapter = None
        try:
            if request.adapter is not None:  # loaded in a thread the first time; held until the sequence ends
                adapter = await scheduler.adapters.acquire(request.adapter)
            seq = Sequence(
                prompt=prompt,
                max_tokens=max_tokens,
                limit=self.limit,
                sampler=sampler,
                stop_ids=frozenset(t for t in stop_ids if t is not None),
                logprobs=request.sampling.logprobs,
                top_logprobs=request.sampling.top_logprobs,
                loop=asyncio.get_running_loop(),
                adapter=adapter,
                scale=request.adapter.scale if request.adapter is not None else 1.0,
                background=request.background,
                pictures=pictures,
            )
        except BaseException:
            sampler.close()
            if adapter is not None:
                adapter.release()
            raise
        try:
            scheduler.submit(seq)
        except BaseException:
            seq.close()
            raise
        return LlamaHandle(seq, scheduler.cancel)

    def stats(self) -> dict[str, int]:
        return self.scheduler.stats() if self.scheduler is not None else {}

    def template_hints(self) -> dict[str, str]:
        model = self.model
        if model is None:
            return {}
        return {
            "architecture": model.architecture,
            "chat_template": model.chat_template or "",
            "bos_token": model.bos_text,
            "eos_token": model.eos_text,
        }
