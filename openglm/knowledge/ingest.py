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
from dataclasses import dataclass, field, replace

import numpy as np

from ..accounts.metering import Meter, MeteredCall
from ..catalog import EmbeddingSpec
from ..embeddings.service import EmbeddingService
from ..errors import OpenGLMError
from ..files.blobs import BlobStore
from ..serving.usage import UsageBound, new_usage_id, token_bound
from ..untrusted.pool import on_behalf_of
from .chunking import Chunk, chunk
from .fulltext import search_text
from .options import ChunkingOptions
from .parsing import parse_isolated
from .records import DocumentRecord, KnowledgeRecord
from .store import KnowledgeStore, NewChunk

log = logging.getLogger(__name__)
EMBED_BATCH = 64  # chunks per embedding call: progress moves at least this often
POLL_SECONDS = 5.0  # how often an idle worker looks for documents another replica queued
SPECIAL_TOKENS = 2  # [CLS] and [SEP]: the model's limit counts them, the chunker's counter does not


class Ingestor:
    def __init__(
        self,
        store: KnowledgeStore,
        embeddings: EmbeddingService,
        blobs: BlobStore,
        meter: Meter | None = None,
        *,
        workers: int = 2,
        batch_documents: int = 16,
    ):
        self.store = store
        self.embeddings = embeddings
        self.blobs = blobs
        self.meter = meter
        self.workers = workers
        self.batch_documents = batch_documents  # documents one worker claims at once (small ones share passes)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

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
                documents = await self.store.claim_queued(self.batch_documents)
            except Exception:
                log.exception("ingestion: cannot read the queue")
                documents = []
            if not documents:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                continue
            self._wake.set()  # there may be more: let the other workers look too
            await self.ingest(documents)

    async def ingest(self, documents: list[DocumentRecord]) -> None:
        """A batch of documents: each parsed and chunked, then all their chunks embedded together, then all
        stored in one transaction. A document that fails is marked failed alone; the others go on."""
        prepared: list[_Prepared] = []
        for document in documents:
            try:
                prepared.append(await self._prepare(document))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail(document, exc)
        if not prepared:
            return
        try:
            await self._embed_and_store(prepared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for item in prepared:
                await self._fail(item.document, exc)

    async def _fail(self, document: DocumentRecord, exc: Exception) -> None:
        if isinstance(exc, OpenGLMError):
            reason = f"{exc.message} (error {exc.code})"  # e.g. 1113: the account had no balance to embed it with
        else:
            log.exception("ingestion of document %s failed", document.id, exc_info=exc)
            reason = f"internal error: {type(exc).__name__}"
        with contextlib.suppress(Exception):
            await self.store.set_progress(document.id, status="failed", error=reason)

    async def _prepare(self, document: DocumentRecord) -> _Prepared:
        knowledge = await self.store.get(document.account_id, document.knowledge_id)
        if document.file_id is None:
            raise OpenGLMError("the document has no file")
        data = await self.blobs.get(document.file_id)
        spec = self.embeddings.resolve(knowledge.embedding_model)
        count_tokens = await self.embeddings.token_counter(spec)
        options = chunking_options(knowledge, document, await self.embeddings.input_token_limit(spec))
        with on_behalf_of(document.account_id):  # the document's account's share of the parse workers
            parsed = await parse_isolated(data, document.name)
        chunks = await asyncio.to_thread(chunk, parsed, options, count_tokens)
        return _Prepared(document, spec, parsed.text, chunks)

    async def _embed_and_store(self, prepared: list[_Prepared]) -> None:
        calls: dict[str, MeteredCall | None] = {}
        admitted: list[_Prepared] = []
        for item in prepared:  # each document admitted and its cost reserved before anything is embedded
            try:
                calls[item.document.id] = await self._admit(item)
            except asyncio.CancelledError:
                await self._abandon(calls)
                raise
            except Exception as exc:  # 1113: no balance left for it; the others go on
                await self._fail(item.document, exc)
            else:
                admitted.append(item)
        try:
            for item in admitted:  # one call per document: each status write names its own total
                await self.store.set_progress(
                    item.document.id, status="embedding", chunks_total=len(item.chunks), chunks_done=0
                )
            # Concurrently: the embedding backend merges the documents' texts into shared forward passes, and
            # each document still learns its own exact token count.
            await asyncio.gather(*(self._embed(item, calls[item.document.id]) for item in admitted))
            stored = await self.store.store_documents(
                [(item.document, item.text, _new_chunks(item.chunks, item.vectors)) for item in admitted]
            )
        except BaseException:
            await self._abandon(calls)  # nothing kept: the holds are given back, nothing charged
            raise
        for item in admitted:
            call = calls[item.document.id]
            if call is not None:
                await call.settle("succeeded" if item.document.id in stored else "cancelled")

    @staticmethod
    async def _abandon(calls: dict[str, MeteredCall | None]) -> None:
        for call in calls.values():
            if call is not None:
                await call.abandon()

    async def _embed(self, item: _Prepared, call: MeteredCall | None) -> None:
        for start in range(0, len(item.chunks), EMBED_BATCH):
            batch = item.chunks[start : start + EMBED_BATCH]
            embedded = await self.embeddings.embed(item.spec, [c.embed_text for c in batch])
            item.vectors.extend(np.asarray(row, dtype="<f4").tobytes() for row in embedded.vectors)
            if call is not None:
                call.tally.prompt_tokens += embedded.tokens
            if len(item.vectors) < len(item.chunks):  # a finished document is written with its chunks
                await self.store.set_progress(item.document.id, chunks_done=len(item.vectors))

    async def _admit(self, item: _Prepared) -> MeteredCall | None:
        """The document's embedding, admitted like a call: its account's balance checked and the chunks' byte
        bound reserved at the model's price before anything is embedded (1113 when nothing is left), then
        billed as one ``knowledge.ingest`` usage record for the tokens used."""
        if self.meter is None:
            return None
        bound = UsageBound(prompt_tokens=sum(token_bound(c.embed_text) for c in item.chunks))
        call = await self.meter.admit_job(item.document.account_id, item.spec, "knowledge.ingest", bound=bound)
        call.bind(new_usage_id("kb"), item.document.id)  # never made of the document: an edit recurs
        return call


@dataclass
class _Prepared:
    document: DocumentRecord
    spec: EmbeddingSpec
    text: str
    chunks: list[Chunk]
    vectors: list[bytes] = field(default_factory=list)


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
