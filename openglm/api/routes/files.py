"""The files API under both prefixes: upload, list, get, content, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidFieldError
from ...files.store import OPENAI_PURPOSES, PURPOSES, FileRecord
from ...protocol.common import MAX_PAGE
from ...protocol.files import FileDeleted, FileList, FileObject
from ...protocol.knowledge import DocumentObject, DocumentPage, DocumentSuccessInfo
from ...untrusted.loaders import load_json
from ..deps import Caller
from ..deps import files as _store
from ..deps import knowledge as knowledge_service
from ..downloads import download
from ..knowledge_views import document_data
from ._common import both_prefixes, json_response

router = APIRouter(tags=["files"])
MAX_UPLOAD = max(rules.max_bytes for rules in PURPOSES.values())


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=int(record.created_at.timestamp()),
        filename=record.filename,
        purpose=record.purpose,
    )


@both_prefixes(router, "POST", "/files")
async def upload(
    request: Request,
    principal: Caller,
    file: UploadFile,
    purpose: str = Form(),
    knowledge_id: str | None = Form(None),
    sentence_size: int | None = Form(None),
    custom_separator: Annotated[list[str] | None, Form()] = None,
) -> Response:
    data = await file.read(MAX_UPLOAD + 1)  # a cap on what is read, whatever the client claims
    content_type = file.content_type or "application/octet-stream"
    filename = file.filename or "upload"
    if knowledge_id is not None:
        if purpose != "retrieval":
            raise InvalidFieldError("knowledge_id: documents of a knowledge base are uploaded with purpose retrieval")
        options = {"sentence_size": sentence_size, "custom_separator": _separators(custom_separator)}
        knowledge = knowledge_service(request)
        result = await knowledge.upload(
            principal, knowledge_id, filename, data, content_type, {k: v for k, v in options.items() if v}
        )
        info = DocumentSuccessInfo(documentId=result.document.id, filename=filename, duplicate=result.duplicate)
        return json_response(DocumentObject(successInfos=[info], failedInfos=[]))
    record = await _store(request).create(principal.account_id, purpose, filename, data, content_type)
    return json_response(file_object(record))


def _separators(values: list[str] | None) -> list[str] | None:
    """Zhipu's SDK sends the list as repeated form fields; a client may also send one JSON-encoded list."""
    if not values:
        return None
    if len(values) == 1 and values[0].startswith("["):
        try:
            decoded = load_json(values[0], what="custom_separator")
        except ValueError:
            raise InvalidFieldError("custom_separator must be a list of strings") from None
        if not isinstance(decoded, list) or not all(isinstance(v, str) for v in decoded):
            raise InvalidFieldError("custom_separator must be a list of strings")
        return decoded
    return [value.replace("\\n", "\n").replace("\\t", "\t") for value in values]  # curl -F sends \n as is


@both_prefixes(router, "GET", "/files")
async def list_files(
    request: Request,
    principal: Caller,
    purpose: str | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = None,
    knowledge_id: str | None = None,
    page: int = Query(default=1, ge=1, le=MAX_PAGE),
    order: str = Query(default="desc", pattern="^(asc|desc)$"),
) -> Response:
    if knowledge_id is not None:  # Zhipu: a knowledge base's documents
        documents, total = await knowledge_service(request).store.documents(
            principal.account_id, knowledge_id, page, limit, newest_first=order == "desc"
        )
        url = str(request.base_url).rstrip("/")
        return json_response(DocumentPage(list=[document_data(d, url) for d in documents], total=total))
    # The openai SDK (/v1) is given the files of its own purposes unless it names another (files.store).
    openai_only = OPENAI_PURPOSES if purpose is None and request.url.path.startswith("/v1/") else None
    records, more = await _store(request).list(
        principal.account_id, purpose=purpose, limit=limit, after=after, purposes=openai_only
    )
    return json_response(FileList(data=[file_object(r) for r in records], has_more=more))


@both_prefixes(router, "GET", "/files/{file_id}")
async def get_file(file_id: str, request: Request, principal: Caller) -> Response:
    return json_response(file_object(await _store(request).get(principal.account_id, file_id)))


@both_prefixes(router, "GET", "/files/{file_id}/content")
async def file_content(file_id: str, request: Request, principal: Caller) -> Response:
    record, data = await _store(request).content(principal.account_id, file_id)
    return download(record.filename, data, record.content_type)


@both_prefixes(router, "DELETE", "/files/{file_id}")
async def delete_file(file_id: str, request: Request, principal: Caller) -> Response:
    record = await _store(request).delete(principal.account_id, file_id)
    return json_response(FileDeleted(id=record.id))
