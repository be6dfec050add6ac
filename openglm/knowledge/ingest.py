"""Ingestion: queued documents are parsed, chunked, embedded and stored in the background, with progress.

Documents wait in the database (status ``queued``), so a restart or another replica picks them up; a worker
claims one at a time with a conditional update (one winner). Several workers run at once, and the embedding
backend batches the texts of every document being embedded into shared forward passes, so a bulk upload is
embedded in full batches rather than one small file at a time. A document's chunks are written in one
transaction at the end: a search never sees half a document, and a failure leaves the previous chunks (if any).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..accounts.auth import Principal
from ..accounts.metering import Meter, MeteredCall, PriceBook
from ..catalog import EmbeddingSpec
from ..embeddings.service import EmbeddingService
from ..errors import OpenGLMError
from ..files.blobs import BlobStore
from .chunking import Chunk, chunk
from .fulltext import search_text
from .options import ChunkingOptions
from .parsing import parse
from .records import DocumentRecord, KnowledgeRecord
from .store import KnowledgeStore, NewChunk

log = logging.getLogger(__name__)
EMBED_BATCH = 64  # chunks per embedding call: progress moves at least this often
POLL_SECONDS = 5.0  # how often an idle worker looks for documents another replica queued
SPECIAL_TOKENS = 2  # [CLS] and [SEP]: the model's limit counts them, the chunker's counter does not


@dataclass
class IngestStats:
    documents: int = 0
    failed: int = 0
    chunks: int = 0


class Ingestor:
    def __init__(
        self,
        store: KnowledgeStore,
        embeddings: EmbeddingService,
        blobs: BlobStore,
        meter: Meter | None = None,
        *,
        workers: int = 2,
    ):
        self.store = store
        self.embeddings = embeddings
        self.blobs = blobs
        self.meter = meter
        self.workers = workers
        self.stats = IngestStats()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_ready: Callable[[DocumentRecord], None] | None = None

    async def start(self) -> None:
        requeued = await self.store.requeue_interrupted()
        if requeued:
            log.info("ingestion: %d interrupted documents queued again", requeued)
        self._tasks = [asyncio.create_task(self._work(), name=f"ingest-{i}") for i in range(self.workers)]

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            try:
                document = await self.store.claim_queued()
            except Exception:
                log.exception("ingestion: cannot read the queue")
                document = None
            if document is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                continue
            self._wake.set()  # there may be more: let the other workers look too
            await self.ingest(document)

    async def ingest(self, document: DocumentRecord) -> None:
        try:
            knowledge = await self.store.get(document.account_id, document.knowledge_id)
            await self._ingest(knowledge, document)
            self.stats.documents += 1
        except asyncio.CancelledError:
            raise
        except OpenGLMError as exc:
            await self._fail(document, exc.message)
        except Exception as exc:
            log.exception("ingestion of document %s failed", document.id)
            await self._fail(document, f"internal error: {type(exc).__name__}")

    async def _fail(self, document: DocumentRecord, reason: str) -> None:
        self.stats.failed += 1
        with contextlib.suppress(Exception):
            await self.store.set_progress(document.id, status="failed", error=reason)

    async def _ingest(self, knowledge: KnowledgeRecord, document: DocumentRecord) -> None:
        if document.file_id is None:
            raise OpenGLMError("the document has no file")
        data = await self.blobs.get(document.file_id)
        spec = self.embeddings.resolve(knowledge.embedding_model)
        count_tokens = await self.embeddings.token_counter(spec)
        options = chunking_options(knowledge, document, await self.embeddings.input_token_limit(spec))
        parsed = await asyncio.to_thread(parse, data, document.name)
        chunks = await asyncio.to_thread(chunk, parsed, options, count_tokens)
        await self.store.set_progress(document.id, status="embedding", chunks_total=len(chunks), chunks_done=0)
        call = self._metered(document, spec)
        vectors = await self._embed(document, spec, chunks, call)
        stored = await self.store.store_chunks(document, parsed.text, _new_chunks(chunks, vectors))
        if call is not None:
            await call.settle("succeeded" if stored else "cancelled")
        self.stats.chunks += len(chunks)
        if stored and self.on_ready is not None:
            self.on_ready(document)

    async def _embed(
        self, document: DocumentRecord, spec: EmbeddingSpec, chunks: list[Chunk], call: MeteredCall | None
    ) -> list[bytes]:
        vectors: list[bytes] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            embedded = await self.embeddings.embed(spec, [c.embed_text for c in batch])
            if call is not None:
                call.tally.prompt_tokens += embedded.tokens
            vectors.extend(np.asarray(row, dtype="<f4").tobytes() for row in embedded.vectors)
            await self.store.set_progress(document.id, chunks_done=len(vectors))
        return vectors

    def _metered(self, document: DocumentRecord, spec: EmbeddingSpec) -> MeteredCall | None:
        """The document's embedding tokens, billed to its account as one ``knowledge.ingest`` usage record."""
        if self.meter is None:
            return None
        prices = PriceBook.of(spec.effective_prices())
        principal = Principal(document.account_id, None)
        call = MeteredCall(self.meter, principal, spec.id, "knowledge.ingest", prices, None)
        call.bind(f"kb-{document.id}-{document.updated_at.timestamp():.0f}", document.id)
        return call


def chunking_options(knowledge: KnowledgeRecord, document: DocumentRecord, input_limit: int | None) -> ChunkingOptions:
    """The base's options, the document's Zhipu overrides (``sentence_size``, ``custom_separator``), and never
    more tokens than the embedding model reads."""
    budget = knowledge.chunk_tokens
    if input_limit is not None:
        budget = min(budget, input_limit - SPECIAL_TOKENS)
    overlap = min(knowledge.overlap_tokens, budget // 2)
    base = ChunkingOptions.from_zhipu(
        document.options.get("sentence_size"),
        document.options.get("custom_separator"),
        chunk_tokens=budget,
        overlap_tokens=overlap,
    )
    if knowledge.separators:
        base = replace(base, separators=tuple(knowledge.separators))
    return base


def _new_chunks(chunks: list[Chunk], vectors: list[bytes]) -> list[NewChunk]:
    return [
        NewChunk(
            position=c.index,
            start=c.start,
            end=c.end,
            text=c.text,
            search_text=search_text(" ".join(c.headings), c.text),
            headings=list(c.headings),
            page=c.pages[0] if c.pages else None,
            kind=c.kind,
            tokens=c.tokens,
            embedding=vector,
        )
        for c, vector in zip(chunks, vectors, strict=True)
    ]
