"""Knowledge bases, documents and chunks in the database (SQLite or PostgreSQL), one account's at a time."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NotFoundError
from ..store.db import Database
from ..store.models import KnowledgeBase, KnowledgeChunk, KnowledgeDocument
from .fulltext import fts5_query, tsquery
from .records import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeRecord,
    chunk_record,
    document_record,
    knowledge_record,
)


def new_id() -> str:
    """Zhipu's shape: a 19-digit number, as a string."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to store: its place, its text, and its embedding (float32 bytes)."""

    position: int
    start: int
    end: int
    text: str
    search_text: str
    headings: list[str]
    page: int | None
    kind: str
    tokens: int
    embedding: bytes


# Called inside the transaction that queues a document (new, or edited) for ingestion: adds the job that ingests
# that version of it, so the document is queued if and only if its job is.
Enqueue = Callable[[AsyncSession, DocumentRecord], Awaitable[None]]
# What happened to a document's ingestion when its chunks were to be stored (``store_version``).
Stored = Literal["stored", "deleted", "superseded", "done"]
ACTIVE_STATES = ("queued", "parsing", "embedding")

COMMON_FRACTION = 0.05  # a term in more than this share of all chunks tells little apart (BM25 IDF below ~3)
PRUNE_FROM = 20_000  # chunks: below this the full query is fast, and dropping terms costs some keyword recall
MAX_TERMS = 8


class KnowledgeStore:
    def __init__(self, db: Database, *, prune_terms_from: int = PRUNE_FROM):
        self.db = db
        self.prune_terms_from = prune_terms_from

    # -- knowledge bases ------------------------------------------------------

    async def create(self, account_id: str, **fields: Any) -> KnowledgeRecord:
        now = datetime.now(UTC)
        if "separators" in fields:
            fields["separators"] = _json_or_none(fields["separators"])
        row = KnowledgeBase(
            id=new_id(), account_id=account_id, index_version=0, created_at=now, updated_at=now, **fields
        )
        async with self.db.session() as session:
            session.add(row)
        return knowledge_record(row)

    async def get(self, account_id: str, knowledge_id: str) -> KnowledgeRecord:
        async with self.db.read() as session:
            row = await session.get(KnowledgeBase, knowledge_id)
        if row is None or row.account_id != account_id:
            raise NotFoundError(f"knowledge base {knowledge_id!r} does not exist")
        return knowledge_record(row)

    async def bases(self, account_id: str, page: int, size: int) -> tuple[list[KnowledgeRecord], int]:
        query = select(KnowledgeBase).where(KnowledgeBase.account_id == account_id)
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(KnowledgeBase.created_at.desc(), KnowledgeBase.id).offset((page - 1) * size).limit(size)
            )
            return [knowledge_record(r) for r in rows], int(total or 0)

    async def update(self, account_id: str, knowledge_id: str, **fields: Any) -> KnowledgeRecord:
        await self.get(account_id, knowledge_id)
        if "separators" in fields:
            fields["separators"] = _json_or_none(fields["separators"])
        async with self.db.session() as session:
            await session.execute(
                update(KnowledgeBase)
                .where(KnowledgeBase.id == knowledge_id)
                .values(**fields, updated_at=datetime.now(UTC))
            )
        return await self.get(account_id, knowledge_id)

    async def remove(self, account_id: str, knowledge_id: str) -> list[DocumentRecord]:
        """The base, its documents and chunks (the index follows by cascade); returns the documents it had."""
        await self.get(account_id, knowledge_id)
        documents = await self.documents_of(knowledge_id)
        async with self.db.session() as session:
            await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.knowledge_id == knowledge_id))
            await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.knowledge_id == knowledge_id))
            await session.execute(delete(KnowledgeBase).where(KnowledgeBase.id == knowledge_id))
        return documents

    async def usage(self, account_id: str) -> int:
        """Characters of text in every document the account keeps."""
        async with self.db.read() as session:
            characters = await session.scalar(
                select(func.coalesce(func.sum(KnowledgeDocument.characters), 0)).where(
                    KnowledgeDocument.account_id == account_id
                )
            )
        return int(characters or 0)

    # -- documents ------------------------------------------------------------

    async def add_document(
        self,
        account_id: str,
        knowledge_id: str,
        *,
        name: str,
        content_hash: str,
        file_id: str | None,
        options: dict[str, Any],
        characters: int = 0,
        enqueue: Enqueue | None = None,
    ) -> tuple[DocumentRecord, bool]:
        """A queued document, or the one this base already has with the same content (False: not new). A new
        document's ``updated_at`` is its version: ingestion stores what it made only while it is unchanged."""
        now = datetime.now(UTC)
        row = KnowledgeDocument(
            id=new_id(),
            knowledge_id=knowledge_id,
            account_id=account_id,
            file_id=file_id,
            name=name[:255],
            content_hash=content_hash,
            status="queued",
            chunks_total=0,
            chunks_done=0,
            characters=characters,
            options=json.dumps(options) if options else None,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.db.session() as session:
                session.add(row)
                await session.flush()
                if enqueue is not None:
                    await enqueue(session, document_record(row))
        except IntegrityError:
            existing = await self._document_with_content(knowledge_id, content_hash)
            if existing is None:
                raise
            return existing, False
        return document_record(row), True

    async def _document_with_content(self, knowledge_id: str, content_hash: str) -> DocumentRecord | None:
        async with self.db.read() as session:
            row = await session.scalar(
                select(KnowledgeDocument).where(
                    KnowledgeDocument.knowledge_id == knowledge_id, KnowledgeDocument.content_hash == content_hash
                )
            )
        return None if row is None else document_record(row)

    async def document(self, account_id: str, document_id: str) -> DocumentRecord:
        async with self.db.read() as session:
            row = await session.get(KnowledgeDocument, document_id)
        if row is None or row.account_id != account_id:
            raise NotFoundError(f"document {document_id!r} does not exist")
        return document_record(row)

    async def document_text(self, document_id: str) -> str | None:
        async with self.db.read() as session:
            row = await session.get(KnowledgeDocument, document_id)
        return None if row is None else row.text

    async def documents(
        self, account_id: str, knowledge_id: str, page: int, limit: int, newest_first: bool = True
    ) -> tuple[list[DocumentRecord], int]:
        await self.get(account_id, knowledge_id)
        query = select(KnowledgeDocument).where(KnowledgeDocument.knowledge_id == knowledge_id)
        order = KnowledgeDocument.created_at.desc() if newest_first else KnowledgeDocument.created_at.asc()
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(order, KnowledgeDocument.id).offset((page - 1) * limit).limit(limit)
            )
            return [document_record(r) for r in rows], int(total or 0)

    async def documents_of(self, knowledge_id: str) -> list[DocumentRecord]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(KnowledgeDocument).where(KnowledgeDocument.knowledge_id == knowledge_id)
            )
            return [document_record(r) for r in rows]

    async def update_document_options(
        self, account_id: str, document_id: str, options: dict[str, Any], enqueue: Enqueue | None = None
    ) -> DocumentRecord:
        """New chunking options: the document is queued to be chunked again, as a new version (``updated_at``
        moves forward, strictly, so an ingestion of the earlier version can tell it was superseded)."""
        async with self.db.session() as session:
            row = await self._locked(session, document_id)
            if row is None or row.account_id != account_id:
                raise NotFoundError(f"document {document_id!r} does not exist")
            now = datetime.now(UTC)
            row.updated_at = max(now, row.updated_at + timedelta(microseconds=1))
            row.options, row.status, row.error = json.dumps(options), "queued", None
            await session.flush()
            document = document_record(row)
            if enqueue is not None:
                await enqueue(session, document)
        return document

    async def _locked(self, session: AsyncSession, document_id: str) -> KnowledgeDocument | None:
        """The document's row, locked until the transaction ends (PostgreSQL; SQLite's write transactions are
        serialized already)."""
        query = select(KnowledgeDocument).where(KnowledgeDocument.id == document_id)
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        return (await session.scalars(query)).first()

    async def delete_document(self, account_id: str, document_id: str) -> DocumentRecord:
        document = await self.document(account_id, document_id)
        async with self.db.session() as session:
            await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
            await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id == document_id))
            await _bump(session, document.knowledge_id)
        return document

    # -- ingestion ------------------------------------------------------------

    async def in_progress(self) -> list[DocumentRecord]:
        """Documents queued or being ingested (at startup: those whose job must exist)."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(KnowledgeDocument)
                .where(KnowledgeDocument.status.in_(ACTIVE_STATES))
                .order_by(KnowledgeDocument.created_at, KnowledgeDocument.id)
            )
            return [document_record(r) for r in rows]

    async def set_progress(self, document_id: str, version: datetime, **values: Any) -> bool:
        """Status and progress of one version of a document (``updated_at``); False, nothing written, when the
        document was deleted or edited since (a newer version's ingestion owns its status)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(KnowledgeDocument)
                .where(KnowledgeDocument.id == document_id, KnowledgeDocument.updated_at == version)
                .values(**values)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def store_version(
        self, session: AsyncSession, document: DocumentRecord, version: datetime, text_: str, chunks: Sequence[NewChunk]
    ) -> Stored:
        """In the caller's transaction (which also records the charge): the chunks of this version of the
        document, its text and status ready, if the document is still at this version and not ready yet;
        otherwise nothing, and why (deleted, superseded by an edit, or done by an earlier attempt)."""
        row = await self._locked(session, document.id)
        if row is None:
            return "deleted"
        if row.updated_at != version:
            return "superseded"
        if row.status == "ready":
            return "done"
        await _write_chunks(session, document, text_, chunks)
        await _bump(session, document.knowledge_id)
        return "stored"

    async def store_chunks(self, document: DocumentRecord, text_: str, chunks: Sequence[NewChunk]) -> bool:
        """A document's chunks, all at once with its text, replacing earlier ones; False when the document was
        deleted meanwhile (nothing is written then)."""
        return document.id in await self.store_documents([(document, text_, chunks)])

    async def store_documents(self, documents: Sequence[tuple[DocumentRecord, str, Sequence[NewChunk]]]) -> set[str]:
        """Several documents' chunks in one transaction (each as ``store_chunks``); the ids of those written."""
        stored: set[str] = set()
        async with self.db.session() as session:
            present = set(
                await session.scalars(
                    select(KnowledgeDocument.id).where(KnowledgeDocument.id.in_([d.id for d, _, _ in documents]))
                )
            )
            for document, text_, chunks in documents:
                if document.id in present:
                    await _write_chunks(session, document, text_, chunks)
                    stored.add(document.id)
            for knowledge_id in {d.knowledge_id for d, _, _ in documents if d.id in stored}:
                await _bump(session, knowledge_id)
        return stored

    # -- chunks and search ----------------------------------------------------

    async def _discriminating(self, terms: list[str]) -> list[str]:
        """In a large index (SQLite), the query's rarest terms: terms in more than 5% of the chunks weigh little
        in BM25 but make an OR query visit most of the index (at 100k chunks, 102 → 10 ms p50 without them). If
        every term is common, the two rarest are kept."""
        total = (await self.db.fetch(select(func.max(KnowledgeChunk.seq))))[0][0] or 0
        if total < self.prune_terms_from:
            return terms
        placeholders = ", ".join(f":t{i}" for i in range(len(terms)))
        lookup = text(f"SELECT term, doc FROM knowledge_chunks_fts_vocab WHERE term IN ({placeholders})").bindparams(
            **{f"t{i}": term for i, term in enumerate(terms)}
        )
        counts = {str(term): int(doc) for term, doc in await self.db.fetch(lookup)}
        present = sorted((t for t in terms if counts.get(t)), key=lambda t: counts[t])
        rare = [t for t in present if counts[t] <= COMMON_FRACTION * total]
        return (rare or present[:2] or terms)[:MAX_TERMS]

    async def chunks(self, account_id: str, document_id: str, page: int, size: int) -> tuple[list[ChunkRecord], int]:
        document = await self.document(account_id, document_id)
        query = select(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id)
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(query.order_by(KnowledgeChunk.position).offset((page - 1) * size).limit(size))
            return [chunk_record(r, document.name) for r in rows], int(total or 0)

    async def chunks_by_seq(self, seqs: Sequence[int]) -> dict[int, ChunkRecord]:
        if not seqs:
            return {}
        async with self.db.read() as session:
            rows = await session.execute(
                select(KnowledgeChunk, KnowledgeDocument.name)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(KnowledgeChunk.seq.in_(list(seqs)))
            )
            return {chunk.seq: chunk_record(chunk, name) for chunk, name in rows}

    async def index_version(self, knowledge_id: str) -> int | None:
        rows = await self.db.fetch(select(KnowledgeBase.index_version).where(KnowledgeBase.id == knowledge_id))
        return int(rows[0][0]) if rows else None

    async def embeddings(self, knowledge_id: str) -> tuple[list[int], list[bytes], int]:
        """Every chunk's seq and embedding in the base, with the index version they belong to."""
        async with self.db.read() as session:
            version = await session.scalar(select(KnowledgeBase.index_version).where(KnowledgeBase.id == knowledge_id))
            rows = (
                await session.execute(
                    select(KnowledgeChunk.seq, KnowledgeChunk.embedding)
                    .where(KnowledgeChunk.knowledge_id == knowledge_id)
                    .order_by(KnowledgeChunk.seq)
                )
            ).all()
        return [r[0] for r in rows], [r[1] for r in rows], int(version or 0)

    async def text_search(self, knowledge_id: str, terms: list[str], limit: int) -> list[tuple[int, float]]:
        """(seq, score) of the chunks matching any term, best first: BM25 on SQLite, ts_rank_cd on PostgreSQL."""
        if not terms:
            return []
        if self.db.dialect == "sqlite":
            terms = await self._discriminating(terms)
            # ORDER BY rank (BM25) lets FTS5 rank inside the virtual table: ~3x faster than ORDER BY bm25().
            statement = text(
                "SELECT c.seq, -knowledge_chunks_fts.rank AS score FROM knowledge_chunks_fts "
                "JOIN knowledge_chunks c ON c.seq = knowledge_chunks_fts.rowid "
                "WHERE knowledge_chunks_fts MATCH :query AND c.knowledge_id = :kb "
                "ORDER BY knowledge_chunks_fts.rank LIMIT :limit"
            ).bindparams(query=fts5_query(terms), kb=knowledge_id, limit=limit)
        else:
            statement = text(
                "SELECT seq, ts_rank_cd(to_tsvector('simple', search_text), q) AS score "
                "FROM knowledge_chunks, to_tsquery('simple', :query) q "
                "WHERE knowledge_id = :kb AND to_tsvector('simple', search_text) @@ q "
                "ORDER BY score DESC, seq LIMIT :limit"
            ).bindparams(query=tsquery(terms), kb=knowledge_id, limit=limit)
        async with self.db.read() as session:
            return [(int(seq), float(score)) for seq, score in await session.execute(statement)]


async def _write_chunks(session: Any, document: DocumentRecord, text_: str, chunks: Sequence[NewChunk]) -> None:
    await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document.id))
    session.add_all(
        KnowledgeChunk(
            id=f"{document.id}-{chunk.position}",
            knowledge_id=document.knowledge_id,
            document_id=document.id,
            position=chunk.position,
            start=chunk.start,
            end=chunk.end,
            text=chunk.text,
            search_text=chunk.search_text,
            headings=json.dumps(chunk.headings, ensure_ascii=False),
            page=chunk.page,
            kind=chunk.kind,
            tokens=chunk.tokens,
            embedding=chunk.embedding,
        )
        for chunk in chunks
    )
    await session.execute(
        update(KnowledgeDocument)
        .where(KnowledgeDocument.id == document.id)
        .values(
            status="ready",
            error=None,
            text=text_,
            characters=len(text_),
            chunks_total=len(chunks),
            chunks_done=len(chunks),
        )
    )


async def _bump(session: Any, knowledge_id: str) -> None:
    await session.execute(
        update(KnowledgeBase)
        .where(KnowledgeBase.id == knowledge_id)
        .values(index_version=KnowledgeBase.index_version + 1, updated_at=datetime.now(UTC))
    )


def _json_or_none(value: list[str] | None) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value else None
