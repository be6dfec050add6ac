"""Ingestion on the job system: one ``knowledge_ingest`` job per version of a document, which parses, chunks,
embeds and stores it with progress, and charges its embedding once.

A document is queued (new, or edited) in the same transaction as the job that ingests that version of it: the
payload names the document, its version (``updated_at``, moved forward by every edit) and the usage id the charge
is recorded under. Any runner may claim the job — the server's, a replica's, an ``openglm jobs work`` process —
and one whose worker died is claimed again after its lease (``docs/architecture.md``, "Jobs").

What a run writes to the document (its status and progress) is conditional on the version, so an ingestion of a
version an edit superseded changes nothing of the newer one. The chunks, the document's text and status ready,
the usage record, its ledger charge, the release of the reservation and the job's checkpoint ``stored`` commit in
one transaction, with the job's row locked while this worker holds it (``JobStore.holding``) and the document's
row locked at the version: either all of it or none. A worker killed before that commit wrote nothing of it (its
reservation expires and is swept) and the next attempt starts over; one killed after it left the checkpoint,
and the next attempt returns at once. The usage id from the payload is the record's primary key besides, so a
charge cannot be written twice for one job. Deleting a document or its base cancels its jobs; a run that still
reaches its commit finds the document gone and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from ..accounts.metering import Meter, MeteredCall
from ..catalog import Catalog, EmbeddingSpec
from ..config import Settings
from ..embeddings.service import EmbeddingService
from ..errors import OpenGLMError
from ..files.blobs import BlobStore, LocalBlobStore
from ..jobs.context import JobCancelled, JobContext, JobFailed
from ..jobs.kinds import job_kinds, lost_hooks, own_slots, shutdown_hooks
from ..jobs.runner import JobRunner
from ..jobs.store import JobRecord, JobStore, LeaseLost
from ..serving.usage import UsageBound, new_usage_id, token_bound
from ..store.db import Database
from ..untrusted.pool import on_behalf_of
from .chunking import Chunk, chunk
from .fulltext import search_text
from .options import ChunkingOptions
from .parsing import parse_isolated
from .records import DocumentRecord, KnowledgeRecord
from .store import KnowledgeStore, NewChunk

log = logging.getLogger(__name__)
KIND = "knowledge_ingest"
JOB_PREFIX = "kbjob"
EMBED_BATCH = 64  # chunks per embedding call: progress moves at least this often
SPECIAL_TOKENS = 2  # [CLS] and [SEP]: the model's limit counts them, the chunker's counter does not
MAX_ATTEMPTS = 3  # workers that may die on one document before it is marked failed


def payload_of(document: DocumentRecord) -> dict[str, Any]:
    return {
        "document_id": document.id,
        "knowledge_id": document.knowledge_id,
        "version": document.updated_at.isoformat(),
        "usage_id": new_usage_id("kb"),
    }


class IngestQueue:
    """The knowledge service's side of the job system: queue a version of a document (inside the transaction
    that made it), cancel the jobs a deletion or an edit made moot, and make sure every document waiting for
    ingestion has its job (at startup: documents queued before ingestion ran on jobs)."""

    def __init__(self, jobs: JobRunner):
        self.jobs = jobs

    @property
    def store(self) -> JobStore:
        return self.jobs.store

    async def enqueue(self, session: AsyncSession, document: DocumentRecord) -> None:
        self.store.add(
            session,
            KIND,
            payload_of(document),
            account_id=document.account_id,
            max_attempts=MAX_ATTEMPTS,
            prefix=JOB_PREFIX,
        )

    def wake(self) -> None:
        self.jobs.wake()

    async def cancel(
        self, account_id: str, *, document_id: str | None = None, knowledge_id: str | None = None, keep: str = ""
    ) -> int:
        """Cancel the account's unfinished ingestion jobs of a document or of a base (but not the version
        ``keep``); a queued one ends at once, a running one stops within a heartbeat (at once in this process)."""
        cancelled = 0
        for job in await self.store.unfinished(KIND, account_id=account_id):
            of_document = document_id is not None and job.payload.get("document_id") == document_id
            of_base = knowledge_id is not None and job.payload.get("knowledge_id") == knowledge_id
            if (of_document or of_base) and job.payload.get("version") != keep:
                with contextlib.suppress(Exception):  # finished meanwhile
                    await self.jobs.cancel(job.id)
                    cancelled += 1
        return cancelled

    async def resume(self, knowledge: KnowledgeStore) -> int:
        """Queue a job for every document waiting for ingestion that has none (queued by an older version of
        the server, or by a queue that lost its job some other way); the number queued."""
        pending = {(j.payload.get("document_id"), j.payload.get("version")) for j in await self.store.unfinished(KIND)}
        queued = 0
        for document in await knowledge.in_progress():
            if (document.id, document.updated_at.isoformat()) in pending:
                continue
            async with self.store.db.session() as session:
                await self.enqueue(session, document)
            queued += 1
        if queued:
            log.info("ingestion: %d documents waiting without a job were queued", queued)
            self.wake()
        return queued


class Ingestor:
    """Runs ingestion jobs with one process's embedding models, blob store and meter."""

    def __init__(
        self, store: KnowledgeStore, embeddings: EmbeddingService, blobs: BlobStore, meter: Meter | None = None
    ):
        self.store = store
        self.embeddings = embeddings
        self.blobs = blobs
        self.meter = meter

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        resume = ctx.resume or {}
        if resume.get("stage") == "stored":  # an earlier attempt committed; its worker died after
            return dict(resume.get("result") or {})
        payload = ctx.payload
        version = datetime.fromisoformat(payload["version"])
        document = await self._current(ctx, payload["document_id"], version)
        if document is None:
            return {"document_id": payload["document_id"], "skipped": "deleted or superseded"}
        call: MeteredCall | None = None
        try:
            await self.store.set_progress(document.id, version, status="parsing", error=None, chunks_done=0)
            prepared = await self._prepare(document)
            call = await self._admit(prepared, payload["usage_id"])
            await self.store.set_progress(
                document.id, version, status="embedding", chunks_total=len(prepared.chunks), chunks_done=0
            )
            await self._embed(prepared, call, version)
            ctx.raise_if_cancelled()
            return await self._commit(ctx, prepared, version, call)
        except LeaseLost:  # another worker holds the job now, and the document's status is its to write
            if call is not None:
                await asyncio.shield(call.abandon())
            raise
        except (asyncio.CancelledError, JobCancelled):
            if call is not None:
                await asyncio.shield(call.abandon())
            # Given back (a shutdown) or cancelled: queued again for whoever runs it next (a deleted or edited
            # document is not touched: its version is gone).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.set_progress(document.id, version, status="queued", chunks_done=0))
            raise
        except Exception as exc:
            if call is not None:
                await call.abandon()
            reason = failure_reason(document, exc)
            with contextlib.suppress(Exception):
                await self.store.set_progress(document.id, version, status="failed", error=reason)
            raise JobFailed(reason, code=getattr(exc, "code", "internal_error")) from exc

    async def _current(self, ctx: JobContext, document_id: str, version: datetime) -> DocumentRecord | None:
        """The document at the job's version, or None when it was deleted, edited since, or is ready already."""
        try:
            document = await self.store.document(ctx.account_id or "", document_id)
        except OpenGLMError:
            return None
        if document.updated_at != version or document.status == "ready":
            return None
        return document

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

    async def _admit(self, item: _Prepared, usage_id: str) -> MeteredCall | None:
        """The document's embedding, admitted like a call: its account's balance checked and the chunks' byte
        bound reserved at the model's price before anything is embedded (1113 when nothing is left), then
        billed as one ``knowledge.ingest`` usage record (id from the job's payload) for the tokens used."""
        if self.meter is None:
            return None
        bound = UsageBound(prompt_tokens=sum(token_bound(c.embed_text) for c in item.chunks))
        call = await self.meter.admit_job(item.document.account_id, item.spec, "knowledge.ingest", bound=bound)
        call.bind(usage_id, item.document.id)
        return call

    async def _embed(self, item: _Prepared, call: MeteredCall | None, version: datetime) -> None:
        """In batches; runs of several documents at once share the backend's forward passes (it merges the
        texts of concurrent calls), and each document still learns its own exact token count."""
        for start in range(0, len(item.chunks), EMBED_BATCH):
            batch = item.chunks[start : start + EMBED_BATCH]
            embedded = await self.embeddings.embed(item.spec, [c.embed_text for c in batch])
            item.vectors.extend(np.asarray(row, dtype="<f4").tobytes() for row in embedded.vectors)
            if call is not None:
                call.tally.prompt_tokens += embedded.tokens
            if len(item.vectors) < len(item.chunks):  # a finished document is written with its chunks
                await self.store.set_progress(item.document.id, version, chunks_done=len(item.vectors))

    async def _commit(
        self, ctx: JobContext, item: _Prepared, version: datetime, call: MeteredCall | None
    ) -> dict[str, Any]:
        """Chunks, charge and checkpoint in one transaction while this worker holds the job."""
        result: dict[str, Any] = {"document_id": item.document.id, "chunks": len(item.chunks)}
        try:
            async with ctx.store.holding(ctx.lease) as (session, _):
                outcome = await self.store.store_version(
                    session, item.document, version, item.text, _new_chunks(item.chunks, item.vectors)
                )
                if outcome == "stored" and call is not None:
                    entry = await call.record_in(await session.connection())
                    result.update(usage_id=entry.id, prompt_tokens=entry.prompt_tokens, cost=entry.cost)
                if outcome != "stored":
                    result = {"document_id": item.document.id, "skipped": outcome}
                await ctx.store.set_progress(
                    session, ctx.job_id, {"chunks": len(item.chunks)}, checkpoint={"stage": "stored", "result": result}
                )
        except BaseException:
            if call is not None:
                await asyncio.shield(call.abandon())  # the transaction rolled back: the hold is given back
            raise
        if call is not None:
            if outcome == "stored":
                await call.recorded()
            else:
                await call.abandon()  # nothing kept, nothing charged
        return result


def failure_reason(document: DocumentRecord, exc: Exception) -> str:
    if isinstance(exc, OpenGLMError):
        return f"{exc.message} (error {exc.code})"  # e.g. 1113: the account had no balance to embed it with
    log.error("ingestion of document %s failed", document.id, exc_info=exc)
    return f"internal error: {type(exc).__name__}"


# -- the job kind -------------------------------------------------------------------------------------------------

# The Ingestor of each database in this process: the server registers its own (its loaded embedding models and
# its meter); a worker process without one opens its own on the first job, from its settings.
_ingestors: dict[int, Ingestor] = {}
_opened: dict[int, tuple[Ingestor, EmbeddingService]] = {}


def attach(db: Database, ingestor: Ingestor) -> None:
    _ingestors[id(db)] = ingestor


def detach(db: Database) -> None:
    _ingestors.pop(id(db), None)


async def _ingestor_for(ctx: JobContext) -> Ingestor:
    db = ctx.store.db
    found = _ingestors.get(id(db))
    if found is not None:
        return found
    settings = ctx.settings or Settings()
    embeddings = EmbeddingService(Catalog.from_file(settings.models_file), settings.threads)
    await embeddings.start()
    blobs = LocalBlobStore(settings.data_dir / "blobs")
    ingestor = Ingestor(KnowledgeStore(db), embeddings, blobs, _worker_meter(settings, db))
    if id(db) in _ingestors:  # another slot opened one meanwhile
        await embeddings.close()
        return _ingestors[id(db)]
    _ingestors[id(db)] = ingestor
    _opened[id(db)] = (ingestor, embeddings)
    return ingestor


def _worker_meter(settings: Settings, db: Database) -> Meter:
    """A worker process's meter: the balance and reservations are in the database, as for the server. No spool:
    an ingestion's charge commits with its chunks or not at all."""
    from ..accounts.limits import create_limiter

    return Meter(db, create_limiter(settings.redis_url or None), enforce_balances=settings.auth_enabled())


async def _close_opened() -> None:
    for key, (ingestor, embeddings) in list(_opened.items()):
        _opened.pop(key, None)
        _ingestors.pop(key, None)
        if ingestor.meter is not None:
            await ingestor.meter.drain()
        await embeddings.close()


@job_kinds.register(KIND)
async def ingest(ctx: JobContext) -> dict[str, Any] | None:
    return await (await _ingestor_for(ctx)).run(ctx)


@lost_hooks.register(KIND)
async def ingestion_lost(store: JobStore, job: JobRecord) -> None:
    """Every worker died on this document: it is marked failed (at its version), not left ``embedding``."""
    version = datetime.fromisoformat(job.payload["version"])
    reason = f"internal error: the ingestion stopped {job.attempts} times ({job.error_message})"
    await KnowledgeStore(store.db).set_progress(job.payload["document_id"], version, status="failed", error=reason)


@own_slots.register(KIND)
def ingest_slots(settings: Settings) -> int:
    """OPENGLM_INGEST_WORKERS: documents a runner ingests at once, besides its shared slots."""
    return settings.ingest_workers


shutdown_hooks.append(_close_opened)


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
