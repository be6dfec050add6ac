"""Knowledge bases for the API and the tools: create and edit bases, take documents in, retrieve from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..accounts.auth import Principal
from ..accounts.metering import Meter
from ..config import Settings
from ..embeddings.service import EmbeddingService
from ..errors import InvalidFieldError
from ..files.store import FileRecord, FileStore
from ..jobs.runner import JobRunner
from ..protocol.chat import ChatCompletionRequest
from ..store.db import Database
from .chat import Grounding, grounded_request, question_of, retrieval_tools
from .document import content_hash
from .index import VectorIndex, open_vector_index
from .ingest import Ingestor, IngestQueue, attach, detach
from .options import ChunkingOptions
from .parsing import parse_isolated
from .records import DocumentRecord, KnowledgeRecord
from .retrieval import Retrieval, RetrievalOptions, Retriever
from .store import KnowledgeStore

log = logging.getLogger(__name__)
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32


@dataclass(frozen=True)
class Upload:
    document: DocumentRecord
    file: FileRecord | None
    duplicate: bool  # the base already had these bytes: nothing new was stored or queued


class KnowledgeService:
    def __init__(
        self,
        settings: Settings,
        store: KnowledgeStore,
        embeddings: EmbeddingService,
        files: FileStore,
        index: VectorIndex,
        queue: IngestQueue,
    ):
        self.settings = settings
        self.store = store
        self.embeddings = embeddings
        self.files = files
        self.index = index
        self.queue = queue
        self.retriever = Retriever(store, index, embeddings)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        db: Database,
        embeddings: EmbeddingService,
        files: FileStore,
        meter: Meter | None,
        jobs: JobRunner,
    ) -> KnowledgeService:
        """The service, ingesting through ``jobs`` (whose runner, started by the caller, runs the
        ``knowledge_ingest`` jobs of this process with its embedding models and meter)."""
        store = KnowledgeStore(db)
        index = await open_vector_index(settings, store, {spec.dimensions for spec in embeddings.specs()})
        attach(db, Ingestor(store, embeddings, files.blobs, meter))
        service = cls(settings, store, embeddings, files, index, IngestQueue(jobs))
        await service.queue.resume(store)  # documents waiting without a job (queued before jobs ran ingestion)
        return service

    async def close(self) -> None:
        detach(self.store.db)
        await self.index.close()

    # -- bases ------------------------------------------------------------------

    def default_embedding_model(self) -> str:
        if self.settings.knowledge_embedding_model:
            return self.settings.knowledge_embedding_model
        specs = self.embeddings.specs()
        if not specs:
            raise InvalidFieldError("no embedding model is configured: add [[embeddings]] to the catalog")
        return specs[0].id

    async def create(self, account_id: str, *, embedding_model: str | None, **fields: Any) -> KnowledgeRecord:
        spec = self.embeddings.resolve(embedding_model or self.default_embedding_model())
        chunk_tokens = fields.pop("chunk_tokens", None) or DEFAULT_CHUNK_TOKENS
        overlap = fields.pop("overlap_tokens", None)
        overlap = DEFAULT_OVERLAP_TOKENS if overlap is None else overlap
        ChunkingOptions(chunk_tokens, overlap)  # refuses bad values with a clear 400
        return await self.store.create(
            account_id,
            embedding_model=spec.id,
            dimensions=spec.dimensions,
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap,
            **fields,
        )

    async def delete(self, account_id: str, knowledge_id: str) -> None:
        documents = await self.store.remove(account_id, knowledge_id)
        await self.queue.cancel(account_id, knowledge_id=knowledge_id)  # their ingestions stop
        for document in documents:
            await self._drop_file(account_id, document)

    async def delete_document(self, account_id: str, document_id: str) -> None:
        document = await self.store.delete_document(account_id, document_id)
        await self.queue.cancel(account_id, document_id=document_id)  # its ingestion stops
        await self._drop_file(account_id, document)

    async def _drop_file(self, account_id: str, document: DocumentRecord) -> None:
        if document.file_id is None:
            return
        try:
            await self.files.delete(account_id, document.file_id)
        except Exception:  # already gone: nothing to clean
            log.debug("file %s of document %s was already gone", document.file_id, document.id)

    # -- documents --------------------------------------------------------------

    async def upload(
        self,
        principal: Principal,
        knowledge_id: str,
        filename: str,
        data: bytes,
        content_type: str,
        options: dict[str, Any],
    ) -> Upload:
        """Checks the document (it must parse) and queues it; the same bytes twice in one base are one document."""
        knowledge = await self.store.get(principal.account_id, knowledge_id)
        ChunkingOptions.from_zhipu(options.get("sentence_size"), options.get("custom_separator"))  # 400 if bad
        used = await self.store.usage(principal.account_id)
        room = self.settings.knowledge_capacity_chars - used
        if room <= 0:
            raise InvalidFieldError("知识库容量已满 / the account's knowledge bases are full; delete documents first")
        await self.files.quota.check(principal.account_id, len(data))  # before a parse of up to 50 MiB
        parsed = await parse_isolated(data, filename, content_type, max_chars=room)
        digest = content_hash(data)
        record = await self.files.create(principal.account_id, "retrieval", filename, data, content_type)
        try:
            document, new = await self.store.add_document(
                principal.account_id,
                knowledge.id,
                name=record.filename,
                content_hash=digest,
                file_id=record.id,
                options=options,
                characters=len(parsed.text),
                enqueue=self.queue.enqueue,
            )
        except BaseException:
            await self.files.delete(principal.account_id, record.id)
            raise
        if not new:
            await self.files.delete(principal.account_id, record.id)  # the base keeps the first copy
            return Upload(document, None, True)
        self.queue.wake()
        return Upload(document, record, False)

    async def edit_document(self, account_id: str, document_id: str, options: dict[str, Any]) -> None:
        """New options: a new version of the document, queued with its own job; the earlier version's job is
        cancelled (and could not store anything anyway: its version is gone)."""
        ChunkingOptions.from_zhipu(options.get("sentence_size"), options.get("custom_separator"))
        document = await self.store.update_document_options(
            account_id, document_id, options, enqueue=self.queue.enqueue
        )
        self.queue.wake()
        await self.queue.cancel(account_id, document_id=document_id, keep=document.updated_at.isoformat())

    # -- retrieval --------------------------------------------------------------

    async def retrieve(
        self, account_id: str, knowledge_id: str, query: str, options: RetrievalOptions
    ) -> tuple[KnowledgeRecord, Retrieval]:
        if not query.strip():
            raise InvalidFieldError("query must not be empty")
        knowledge = await self.store.get(account_id, knowledge_id)
        return knowledge, await self.retriever.retrieve(knowledge, query, options)

    # -- chat -------------------------------------------------------------------

    async def ground(self, account_id: str, request: ChatCompletionRequest) -> tuple[ChatCompletionRequest, Grounding]:
        """A chat request with ``retrieval`` tools → the request the model sees and the chunks it was given
        (several bases: their chunks in turn, numbered on; the first tool's template)."""
        tools = retrieval_tools(request)
        if not tools:
            return request, Grounding()
        question_index, question = question_of(request)
        if not question.strip():
            raise InvalidFieldError("messages: the question for the retrieval tool is empty")
        grounding = Grounding()
        for tool in tools:
            _, retrieval = await self.retrieve(account_id, tool.knowledge_id, question, tool.options)
            grounding.chunks.extend(retrieval.chunks)
            grounding.query_tokens += retrieval.query_tokens
        return grounded_request(request, tools[0], grounding, question_index, question), grounding
