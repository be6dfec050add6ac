"""Zhipu's file parsing service under both prefixes (``files/parser.py``): create a task, parse at once, read a
task's result."""

from __future__ import annotations

from fastapi import APIRouter, Form, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..deps import Caller, Parsing
from ._common import both_prefixes, json_response

router = APIRouter(tags=["file parsing"])
MAX_DOCUMENT = 50 * 1024 * 1024


@both_prefixes(router, "POST", "/files/parser/create")
async def create_task(
    principal: Caller,
    parsing: Parsing,
    file: UploadFile,
    tool_type: str = Form(),
    file_type: str | None = Form(None),
) -> Response:
    data = await file.read(MAX_DOCUMENT + 1)
    name, media_type = file.filename or "document", file.content_type or ""
    return json_response(await parsing.create(principal.account_id, name, data, media_type, file_type, tool_type))


@both_prefixes(router, "POST", "/files/parser/sync")
async def parse_now(
    request: Request,
    principal: Caller,
    parsing: Parsing,
    file: UploadFile,
    tool_type: str = Form(),
    file_type: str | None = Form(None),
) -> Response:
    data = await file.read(MAX_DOCUMENT + 1)
    name, media_type = file.filename or "document", file.content_type or ""
    result = await parsing.parse_now(
        principal.account_id, name, data, media_type, file_type, tool_type, str(request.base_url)
    )
    return json_response(result, nulls=True)


@both_prefixes(router, "GET", "/files/parser/result/{task_id}/{format_type}")
async def task_result(
    request: Request, task_id: str, format_type: str, principal: Caller, parsing: Parsing
) -> Response:
    result = await parsing.result(principal.account_id, task_id, format_type, str(request.base_url))
    return json_response(result, nulls=True)
