"""The knowledge API under both prefixes: Zhipu's ``/knowledge`` and ``/document`` routes, plus a document's
chunks and the retrieval test (the same code path as the chat ``retrieval`` tool)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ...knowledge.retrieval import RetrievalOptions
from ...protocol.common import MAX_PAGE
from ...protocol.knowledge import (
    ChunkPage,
    DocumentEdit,
    DocumentPage,
    KnowledgeCreate,
    KnowledgeEdit,
    KnowledgePage,
    KnowledgeStatistics,
    KnowledgeUsed,
    RetrievalRequest,
)
from ..deps import Caller, Runs
from ..deps import knowledge as knowledge_service
from ..knowledge_views import chunk_data, document_data, knowledge_info, retrieval_response
from ._common import both_prefixes, json_response

router = APIRouter(tags=["knowledge"])


service = knowledge_service  # app.state.knowledge, typed


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@both_prefixes(router, "POST", "/knowledge")
async def create_knowledge(body: KnowledgeCreate, request: Request, principal: Caller) -> Response:
    record = await service(request).create(
        principal.account_id,
        embedding_model=body.embedding_model,
        name=body.name,
        description=body.description or "",
        background=body.background or "",
        icon=body.icon or "",
        chunk_tokens=body.chunk_tokens,
        overlap_tokens=body.overlap_tokens,
        separators=body.separators,
    )
    return json_response(knowledge_info(record))


@both_prefixes(router, "GET", "/knowledge")
async def list_knowledge(
    request: Request,
    principal: Caller,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=10, ge=1, le=100),
) -> Response:
    records, total = await service(request).store.bases(principal.account_id, page, size)
    return json_response(KnowledgePage(list=[knowledge_info(r) for r in records], total=total))


@both_prefixes(router, "GET", "/knowledge/capacity")
async def capacity(request: Request, principal: Caller) -> Response:
    knowledge = service(request)
    used = await knowledge.store.usage(principal.account_id)
    total = knowledge.settings.knowledge_capacity_chars
    return json_response(
        KnowledgeUsed(
            used=KnowledgeStatistics(word_num=used, length=used),
            total=KnowledgeStatistics(word_num=total, length=total),
        )
    )


@both_prefixes(router, "GET", "/knowledge/{knowledge_id}")
async def get_knowledge(knowledge_id: str, request: Request, principal: Caller) -> Response:
    return json_response(knowledge_info(await service(request).store.get(principal.account_id, knowledge_id)))


@both_prefixes(router, "PUT", "/knowledge/{knowledge_id}")
async def edit_knowledge(knowledge_id: str, body: KnowledgeEdit, request: Request, principal: Caller) -> Response:
    changes = body.model_dump(exclude_none=True, exclude={"embedding_id"})
    record = await service(request).store.update(principal.account_id, knowledge_id, **changes)
    return json_response(knowledge_info(record))


@both_prefixes(router, "DELETE", "/knowledge/{knowledge_id}")
async def delete_knowledge(knowledge_id: str, request: Request, principal: Caller) -> Response:
    await service(request).delete(principal.account_id, knowledge_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")


@both_prefixes(router, "GET", "/knowledge/{knowledge_id}/documents")
async def list_documents(
    knowledge_id: str,
    request: Request,
    principal: Caller,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    limit: int = Query(default=20, ge=1, le=100),
    order: str = Query(default="desc", pattern="^(asc|desc)$"),
) -> Response:
    records, total = await service(request).store.documents(
        principal.account_id, knowledge_id, page, limit, newest_first=order == "desc"
    )
    url = base_url(request)
    return json_response(DocumentPage(list=[document_data(r, url) for r in records], total=total))


@both_prefixes(router, "POST", "/knowledge/{knowledge_id}/retrieve")
async def retrieve(
    knowledge_id: str, body: RetrievalRequest, request: Request, principal: Caller, runs: Runs
) -> Response:
    options = RetrievalOptions(top_k=body.top_k, mode=body.mode, score_threshold=body.score_threshold)
    retrieval = await (await runs.retrieve(principal, knowledge_id, body.query, options)).result
    return json_response(retrieval_response(knowledge_id, body.mode, retrieval))


@both_prefixes(router, "GET", "/document/{document_id}")
async def get_document(document_id: str, request: Request, principal: Caller) -> Response:
    record = await service(request).store.document(principal.account_id, document_id)
    return json_response(document_data(record, base_url(request)))


@both_prefixes(router, "PUT", "/document/{document_id}")
async def edit_document(document_id: str, body: DocumentEdit, request: Request, principal: Caller) -> Response:
    options = body.model_dump(exclude_none=True, include={"custom_separator", "sentence_size"})
    knowledge = service(request)
    await knowledge.edit_document(principal.account_id, document_id, options)
    record = await knowledge.store.document(principal.account_id, document_id)
    return json_response(document_data(record, base_url(request)))


@both_prefixes(router, "DELETE", "/document/{document_id}")
async def delete_document(document_id: str, request: Request, principal: Caller) -> Response:
    await service(request).delete_document(principal.account_id, document_id)
    return Response(status_code=200, content=b"{}", media_type="application/json")


@both_prefixes(router, "GET", "/document/{document_id}/chunks")
async def list_chunks(
    document_id: str,
    request: Request,
    principal: Caller,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    size: int = Query(default=20, ge=1, le=200),
) -> Response:
    records, total = await service(request).store.chunks(principal.account_id, document_id, page, size)
    return json_response(ChunkPage(list=[chunk_data(r) for r in records], total=total))
