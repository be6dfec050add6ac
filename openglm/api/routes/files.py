"""The files API under both prefixes: upload, list, get, content, delete."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Query, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidFieldError
from ...files.store import PURPOSES, FileRecord, FileStore
from ..deps import Caller
from ..file_schemas import FileDeleted, FileList, FileObject
from ._common import both_prefixes, json_response

router = APIRouter(tags=["files"])
MAX_UPLOAD = max(rules.max_bytes for rules in PURPOSES.values())


def _store(request: Request) -> FileStore:
    store: FileStore = request.app.state.files
    return store


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
    request: Request, principal: Caller, file: UploadFile, purpose: str = Form(), knowledge_id: str | None = Form(None)
) -> Response:
    if knowledge_id is not None:
        raise InvalidFieldError("knowledge_id: knowledge bases are not available on this server yet")
    data = await file.read(MAX_UPLOAD + 1)  # a cap on what is read, whatever the client claims
    content_type = file.content_type or "application/octet-stream"
    record = await _store(request).create(principal.account_id, purpose, file.filename or "upload", data, content_type)
    return json_response(file_object(record))


@both_prefixes(router, "GET", "/files")
async def list_files(
    request: Request,
    principal: Caller,
    purpose: str | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = None,
) -> Response:
    records, more = await _store(request).list(principal.account_id, purpose=purpose, limit=limit, after=after)
    return json_response(FileList(data=[file_object(r) for r in records], has_more=more))


@both_prefixes(router, "GET", "/files/{file_id}")
async def get_file(file_id: str, request: Request, principal: Caller) -> Response:
    return json_response(file_object(await _store(request).get(principal.account_id, file_id)))


@both_prefixes(router, "GET", "/files/{file_id}/content")
async def file_content(file_id: str, request: Request, principal: Caller) -> Response:
    record, data = await _store(request).content(principal.account_id, file_id)
    ascii_name = record.filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(record.filename)}"
    return Response(data, media_type=record.content_type, headers={"Content-Disposition": disposition})


@both_prefixes(router, "DELETE", "/files/{file_id}")
async def delete_file(file_id: str, request: Request, principal: Caller) -> Response:
    record = await _store(request).delete(principal.account_id, file_id)
    return json_response(FileDeleted(id=record.id))
