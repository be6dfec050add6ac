"""Knowledge records → wire models."""

from __future__ import annotations

from ..knowledge.records import ChunkRecord, DocumentRecord, KnowledgeRecord
from ..knowledge.retrieval import Retrieval, RetrievedChunk
from ..protocol.knowledge import (
    ChunkData,
    DocumentData,
    DocumentFailInfo,
    DocumentProgress,
    KnowledgeInfo,
    RetrievalResponse,
    RetrievalUsage,
    RetrievedChunkData,
)

EMBEDDING_STAT = {"ready": 1, "failed": 2}  # Zhipu: 0 being embedded, 1 done, 2 failed
FAILED_CODE = 10003  # Zhipu's codes 10001/10002 are for full bases; this one: the document could not be read


def knowledge_info(record: KnowledgeRecord) -> KnowledgeInfo:
    return KnowledgeInfo(
        id=record.id,
        embedding_id=record.embedding_model,
        embedding_model=record.embedding_model,
        name=record.name,
        description=record.description,
        background=record.background or None,
        icon=record.icon or None,
        chunk_tokens=record.chunk_tokens,
        overlap_tokens=record.overlap_tokens,
        created_at=int(record.created_at.timestamp()),
        updated_at=int(record.updated_at.timestamp()),
    )


def document_data(record: DocumentRecord, base_url: str) -> DocumentData:
    fail = DocumentFailInfo(embedding_code=FAILED_CODE, embedding_msg=record.error or "") if record.error else None
    return DocumentData(
        id=record.id,
        knowledge_id=record.knowledge_id,
        name=record.name,
        custom_separator=record.options.get("custom_separator"),
        sentence_size=None if (size := record.options.get("sentence_size")) is None else str(size),
        length=record.characters,
        word_num=record.characters,
        url=f"{base_url}/v1/files/{record.file_id}/content" if record.file_id else None,
        embedding_stat=EMBEDDING_STAT.get(record.status, 0),
        status=record.status,
        progress=DocumentProgress(chunks_done=record.chunks_done, chunks_total=record.chunks_total),
        failInfo=fail,
        created_at=int(record.created_at.timestamp()),
    )


def chunk_data(record: ChunkRecord) -> ChunkData:
    return ChunkData.model_validate(_chunk_fields(record))


def _chunk_fields(record: ChunkRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "document_id": record.document_id,
        "document_name": record.document_name,
        "position": record.position,
        "start": record.start,
        "end": record.end,
        "page": record.page,
        "headings": record.headings,
        "kind": record.kind,
        "tokens": record.tokens,
        "text": record.text,
    }


def retrieved(item: RetrievedChunk) -> RetrievedChunkData:
    scores = {"score": item.score, "vector_score": item.vector_score, "keyword_score": item.keyword_score}
    return RetrievedChunkData.model_validate(_chunk_fields(item.chunk) | scores)


def retrieval_response(knowledge_id: str, mode: str, retrieval: Retrieval) -> RetrievalResponse:
    return RetrievalResponse(
        knowledge_id=knowledge_id,
        query=retrieval.query,
        mode=mode,
        chunks=[retrieved(item) for item in retrieval.chunks],
        usage=RetrievalUsage(prompt_tokens=retrieval.query_tokens, total_tokens=retrieval.query_tokens),
    )
