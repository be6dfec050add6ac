"""Zhipu's file parsing service under both prefixes (``files/parser.py``): create a task, parse at once, read a
task's result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ...files.parser import DocumentUpload
from ..deps import Caller, Parsing
from ._common import both_prefixes, json_response

router = APIRouter(tags=["file parsing"])
MAX_DOCUMENT = 50 * 1024 * 1024


async def document_upload(
    file: UploadFile, tool_type: str = Form(), file_type: str | None = Form(None)
) -> DocumentUpload:
    """The multipart form both parse routes take (Zhipu's SDK sends ``file``, ``tool_type`` and ``file_type``)."""
    data = await file.read(MAX_DOCUMENT + 1)
    return DocumentUpload(file.filename or "document", data, file.content_type or "", file_type, tool_type)


Upload = Annotated[DocumentUpload, Depends(document_upload)]


@both_prefixes(router, "POST", "/files/parser/create")
async def create_task(principal: Caller, parsing: Parsing, upload: Upload) -> Response:
    return json_response(await parsing.create(principal.account_id, upload))


@both_prefixes(router, "POST", "/files/parser/sync")
async def parse_now(request: Request, principal: Caller, parsing: Parsing, upload: Upload) -> Response:
    return json_response(await parsing.parse_now(principal.account_id, upload, str(request.base_url)), nulls=True)


@both_prefixes(router, "GET", "/files/parser/result/{task_id}/{format_type}")
async def task_result(
    request: Request, task_id: str, format_type: str, principal: Caller, parsing: Parsing
) -> Response:
    result = await parsing.result(principal.account_id, task_id, format_type, str(request.base_url))
    return json_response(result, nulls=True)
