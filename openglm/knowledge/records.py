"""What the knowledge store hands out: plain records, no ORM objects (they outlive their sessions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..store.models import KnowledgeBase, KnowledgeChunk, KnowledgeDocument

DOCUMENT_STATES = ("queued", "parsing", "embedding", "ready", "failed")


@dataclass(frozen=True)
class KnowledgeRecord:
    id: str
    account_id: str
    name: str
    description: str
    background: str
    icon: str
    embedding_model: str
    dimensions: int
    chunk_tokens: int
    overlap_tokens: int
    separators: list[str] | None
    index_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentRecord:
    id: str
    knowledge_id: str
    account_id: str
    file_id: str | None
    name: str
    content_hash: str
    status: str
    error: str | None
    chunks_total: int
    chunks_done: int
    characters: int
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk and where it comes from: enough to cite it (document, position, character span)."""

    seq: int
    id: str
    knowledge_id: str
    document_id: str
    position: int
    start: int
    end: int
    text: str
    headings: list[str] = field(default_factory=list)
    page: int | None = None
    kind: str = "text"
    tokens: int = 0
    document_name: str = ""


def knowledge_record(row: KnowledgeBase) -> KnowledgeRecord:
    return KnowledgeRecord(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        description=row.description,
        background=row.background,
        icon=row.icon,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        chunk_tokens=row.chunk_tokens,
        overlap_tokens=row.overlap_tokens,
        separators=json.loads(row.separators) if row.separators else None,
        index_version=row.index_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def document_record(row: KnowledgeDocument) -> DocumentRecord:
    return DocumentRecord(
        id=row.id,
        knowledge_id=row.knowledge_id,
        account_id=row.account_id,
        file_id=row.file_id,
        name=row.name,
        content_hash=row.content_hash,
        status=row.status,
        error=row.error,
        chunks_total=row.chunks_total,
        chunks_done=row.chunks_done,
        characters=row.characters,
        options=json.loads(row.options) if row.options else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def chunk_record(row: KnowledgeChunk, document_name: str = "") -> ChunkRecord:
    return ChunkRecord(
        seq=row.seq,
        id=row.id,
        knowledge_id=row.knowledge_id,
        document_id=row.document_id,
        position=row.position,
        start=row.start,
        end=row.end,
        text=row.text,
        headings=json.loads(row.headings) if row.headings else [],
        page=row.page,
        kind=row.kind,
        tokens=row.tokens,
        document_name=document_name,
    )
