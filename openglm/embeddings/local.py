"""Embedding models run in this process: ``sentence_transformers`` (torch) and ``llamacpp`` (a GGUF).

Both load on first use (or at startup with ``preload``) on the model's own thread, count tokens with the model's
tokenizer, refuse inputs over the limits before any forward pass, and batch through ``BatchWorker``. torch and
llama.cpp are imported when a model loads, never when ``openglm`` is imported.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..catalog import EmbeddingSpec, resolve_source
from ..errors import EngineError, OpenGLMError, PromptTooLongError
from .backends import Embedded, EmbeddingBackend, TokenCounter, embedding_backends
from .batching import BatchWorker, Vectors

DEFAULT_BATCH_SIZE = 32  # texts per forward pass


class ModelFacts(NamedTuple):
    max_tokens: int  # per input, special tokens included
    dimensions: int


class LocalBackend(EmbeddingBackend):
    def __init__(self, spec: EmbeddingSpec, threads: int):
        super().__init__(spec, threads)
        batch_size = int(spec.options.get("batch_size", DEFAULT_BATCH_SIZE))
        self.worker = BatchWorker(self._forward, batch_size=batch_size, name=f"embed-{spec.id}")
        self.max_input_tokens = 0  # known once loaded
        self._loaded = False
        self._load_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._load_lock:
            if self._loaded:
                return
            try:
                facts = await self.worker.call(self._load)
            except OpenGLMError:
                raise
            except Exception as exc:
                raise EngineError(f"cannot load embedding model {self.spec.id!r}: {exc}") from exc
            self.max_input_tokens = self._limit(facts)
            self._loaded = True

    def _limit(self, facts: ModelFacts) -> int:
        spec = self.spec
        if facts.dimensions != spec.dimensions:
            raise EngineError(
                f"{spec.id}: the model gives {facts.dimensions} dimensions, the catalog says {spec.dimensions}"
            )
        if spec.max_input_tokens is None:
            return facts.max_tokens
        if spec.max_input_tokens > facts.max_tokens:
            raise EngineError(
                f"{spec.id}: max_input_tokens is {spec.max_input_tokens}, the model reads at most {facts.max_tokens}"
            )
        return spec.max_input_tokens

    async def embed(self, texts: Sequence[str]) -> Embedded:
        await self.start()
        counts = await self.worker.call(self._count_tokens, list(texts))
        self._check_lengths(counts)
        return Embedded(await self.worker.embed(texts), sum(counts))

    def _check_lengths(self, counts: list[int]) -> None:
        for index, count in enumerate(counts):
            if count > self.max_input_tokens:
                raise PromptTooLongError(
                    f"input[{index}] is {count} tokens; {self.spec.id} reads at most {self.max_input_tokens} "
                    "tokens per input (shorten or split it)"
                )
        if sum(counts) > self.spec.max_request_tokens:
            raise PromptTooLongError(
                f"the inputs are {sum(counts)} tokens together; at most {self.spec.max_request_tokens} per request"
            )

    @property
    def input_token_limit(self) -> int | None:
        return self.max_input_tokens or self.spec.max_input_tokens

    def stats(self) -> dict[str, Any]:
        worker = self.worker.stats
        return {"loaded": self._loaded, "passes": worker.passes, "texts": worker.texts, "largest_pass": worker.largest}

    async def close(self) -> None:
        await self.worker.close()

    # -- on the model's thread ------------------------------------------------

    @abc.abstractmethod
    def _load(self) -> ModelFacts: ...

    @abc.abstractmethod
    def _count_tokens(self, texts: list[str]) -> list[int]: ...

    @abc.abstractmethod
    def _forward(self, texts: list[str]) -> Vectors: ...


@embedding_backends.register("sentence_transformers")
class SentenceTransformersBackend(LocalBackend):
    """``source``: a sentence-transformers model directory, read from disk only (never downloaded). Vectors are
    what the model's own pipeline gives (all-MiniLM-L6-v2 ends in a Normalize module: unit length).
    Options: ``device`` ("cpu"), ``batch_size``."""

    _model: Any = None
    _counter: TokenCounter | None = None

    def _load(self) -> ModelFacts:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise EngineError(
                "the sentence_transformers backend needs `pip install torch==2.13.0 sentence-transformers`"
            ) from None
        torch.set_num_threads(self.threads)
        transformers_logging.disable_progress_bar()
        device = str(self.spec.options.get("device", "cpu"))
        self._model = SentenceTransformer(resolve_source(self.spec.source), device=device, local_files_only=True)
        dimensions = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        return ModelFacts(int(self._model.max_seq_length), int(dimensions()))

    def _count_tokens(self, texts: list[str]) -> list[int]:
        encoded = self._model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    async def token_counter(self) -> TokenCounter:
        # A tokenizer of its own: the model's is reconfigured (padding, truncation) by every encode on the model's
        # thread, and a Rust tokenizer used from two threads while that happens fails ("Already borrowed").
        await self.start()
        if self._counter is None:
            self._counter = await self.worker.call(self._load_counter)
        return self._counter

    def _load_counter(self) -> TokenCounter:
        tokenizer_file = Path(resolve_source(self.spec.source)) / "tokenizer.json"
        if not tokenizer_file.is_file():
            from ..knowledge.options import approximate_tokens

            return approximate_tokens
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)

    def _forward(self, texts: list[str]) -> Vectors:
        vectors = self._model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@embedding_backends.register("llamacpp")
class LlamaCppEmbeddings(LocalBackend):
    """``source``: a GGUF embedding model (BERT, nomic-bert, Qwen3-Embedding...: any with a pooling type); vectors
    are normalized to unit length. Options: ``batch_tokens`` (2048: the most tokens one decode takes; it also
    caps an input), ``batch_size``."""

    _llm: Any = None

    def _load(self) -> ModelFacts:
        import llama_cpp

        from ..engines.llamacpp.model import init_backend

        path = resolve_source(self.spec.source)
        if not Path(path).is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        init_backend()  # llama.cpp's log goes through ours: warnings and errors only
        tokens = int(self.spec.options.get("batch_tokens", 2048))
        self._llm = llama_cpp.Llama(
            path,
            embedding=True,
            n_ctx=tokens,
            n_batch=tokens,
            n_ubatch=tokens,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        if self._llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            raise EngineError(f"{path} gives one vector per token (no pooling type), not one per text")
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._llm.model)
        return ModelFacts(min(n_ctx_train, tokens), int(self._llm.n_embd()))

    def _count_tokens(self, texts: list[str]) -> list[int]:
        return [len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)) for text in texts]

    async def token_counter(self) -> TokenCounter:
        await self.start()
        llm = self._llm  # tokenizing only reads the vocabulary: safe beside the model's thread
        return lambda text: len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _forward(self, texts: list[str]) -> Vectors:
        return np.asarray(self._llm.embed(texts, normalize=True, truncate=False), dtype=np.float32)

    async def close(self) -> None:
        await super().close()
        if self._llm is not None:
            self._llm.close()
            self._llm = None
