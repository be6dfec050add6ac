"""Zhipu's file parsing service: a document in, its text out, through the knowledge bases' parsers (in the
untrusted worker pool: bounded in time and memory).

    POST /files/parser/create   the upload kept as the account's file (purpose ``file-parser``), a ``file_parse``
                                job queued; its id is the task id
    POST /files/parser/sync     parsed now; the answer carries the text
    GET  /files/parser/result/{task_id}/{text | download_link}
                                processing / succeeded (``content``, or ``parsing_result_url``: the text as the
                                account's file) / failed (what was wrong with the document)

The text is kept as the account's file (``<name>.txt``, purpose ``file-parser``, within its storage quota); the
upload is removed once parsed. Every ``tool_type`` Zhipu's SDKs send is accepted and recorded; they all run the
same parsers, which read text, not pictures: an image (PNG, JPEG, ...) is refused, as no OCR is configured.
Parsing is not billed (no model runs). The job runs in a server (``openglm jobs work`` processes do not register
the kind); a server that dies mid-parse gives it to the next after its lease."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from ..errors import DocumentError, InvalidFieldError, NotFoundError
from ..jobs.context import JobContext, JobFailed
from ..jobs.kinds import job_kinds
from ..jobs.runner import JobRunner
from ..jobs.store import Phase, phase
from ..knowledge.parsing import find_format, parse_isolated
from ..protocol.files import ParserResult, ParserTaskCreated
from ..store.db import Database
from .store import FileRecord, FileStore

KIND = "file_parse"
JOB_PREFIX = "parse"
PURPOSE = "file-parser"
TOOL_TYPES = ("simple", "lite", "doc2x", "tencent", "zhipu-pro", "prime", "prime-sync", "expert")
IMAGES = frozenset({"png", "jpg", "jpeg", "bmp", "gif", "webp", "heic", "heif", "tiff", "eps", "icns", "im"})
IMAGES |= frozenset({"pcx", "ppm", "xbm", "jp2"})
Status = Literal["processing", "succeeded", "failed"]
STATUS: dict[Phase, Status] = {"pending": "processing", "succeeded": "succeeded", "failed": "failed"}


@dataclass(frozen=True)
class DocumentUpload:
    filename: str
    data: bytes
    content_type: str
    file_type: str | None
    tool_type: str


class FileParsing:
    def __init__(self, files: FileStore, jobs: JobRunner, db: Database):
        self.files = files
        self.jobs = jobs
        self.db = db
        _services[id(db)] = self

    def close(self) -> None:
        _services.pop(id(self.db), None)

    async def create(self, account_id: str, upload: DocumentUpload) -> ParserTaskCreated:
        """The task, queued: the document's type is checked now (an unsupported one is a 400, not a failed task)."""
        name = document_name(upload.filename, upload.file_type, upload.tool_type)
        find_format(name, upload.content_type)
        kept = await self.files.create(account_id, PURPOSE, name, upload.data, upload.content_type, by_platform=True)
        payload = {"file_id": kept.id, "filename": name, "tool_type": upload.tool_type, "file_type": upload.file_type}
        job = await self.jobs.submit(KIND, payload, account_id=account_id, max_attempts=2, prefix=JOB_PREFIX)
        return ParserTaskCreated(task_id=job.id, message="任务创建成功", success=True)

    async def parse_now(self, account_id: str, upload: DocumentUpload, base_url: str) -> ParserResult:
        """The sync form: parsed while the caller waits; the text is kept as a file as well (its download link)."""
        name = document_name(upload.filename, upload.file_type, upload.tool_type)
        text = await parsed_text(upload.data, name, upload.content_type)
        kept = await self._keep(account_id, name, text)
        task_id = f"{JOB_PREFIX}-sync-{secrets.token_hex(12)}"  # for the caller's records: nothing is queued
        link = self._link(base_url, kept.id)
        return ParserResult(
            status="succeeded", message="结果获取成功", task_id=task_id, content=text, parsing_result_url=link
        )

    async def result(self, account_id: str, task_id: str, format_type: str, base_url: str) -> ParserResult:
        if format_type not in ("text", "download_link"):
            raise InvalidFieldError(f"format_type must be text or download_link, not {format_type!r}")
        try:
            record = await self.jobs.store.get(task_id, account_id=account_id)
        except NotFoundError:
            record = None
        if record is None or record.kind != KIND:
            raise NotFoundError(f"no file parsing task {task_id!r}")
        status = STATUS[phase(record.status)]
        if status == "processing":
            return ParserResult(status=status, message="任务处理中 / the document is being parsed", task_id=task_id)
        if status == "failed":
            message = record.error_message or "the document could not be parsed"
            return ParserResult(status=status, message=message, task_id=task_id)
        file_id = str((record.result or {}).get("file_id"))
        if format_type == "download_link":
            link = self._link(base_url, file_id)
            return ParserResult(status=status, message="结果获取成功", task_id=task_id, parsing_result_url=link)
        try:
            text = (await self.files.content(account_id, file_id))[1].decode("utf-8")
        except NotFoundError:
            return ParserResult(
                status="failed", message="the parsed text was deleted (its file is gone)", task_id=task_id
            )
        return ParserResult(status=status, message="结果获取成功", task_id=task_id, content=text)

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        assert ctx.account_id is not None
        payload = ctx.payload
        try:
            _, data = await self.files.content(ctx.account_id, str(payload["file_id"]))
        except NotFoundError:
            raise JobFailed("the uploaded document is gone", code="1214") from None
        try:
            text = await parsed_text(data, str(payload["filename"]), None)
        except DocumentError as exc:
            await self.files.delete(ctx.account_id, str(payload["file_id"]))
            raise JobFailed(exc.message, code=exc.code) from None
        kept = await self._keep(ctx.account_id, str(payload["filename"]), text)
        await self.files.delete(ctx.account_id, str(payload["file_id"]))
        return {"file_id": kept.id, "chars": len(text)}

    async def _keep(self, account_id: str, name: str, text: str) -> FileRecord:
        stem = PurePath(name).stem or "document"
        data = text.encode("utf-8")
        return await self.files.create(account_id, PURPOSE, f"{stem}.txt", data, "text/plain", by_platform=True)

    @staticmethod
    def _link(base_url: str, file_id: str) -> str:
        return f"{base_url}v1/files/{file_id}/content"


def document_name(filename: str, file_type: str | None, tool_type: str) -> str:
    """The upload's name with the suffix its ``file_type`` names (Zhipu's SDK sends one; a name without a suffix
    is common); an image or an unknown tool type is refused."""
    if tool_type not in TOOL_TYPES:
        raise InvalidFieldError(f"tool_type must be one of {', '.join(TOOL_TYPES)}, not {tool_type!r}")
    suffix = (file_type or PurePath(filename).suffix.lstrip(".")).strip().lower()
    if suffix in IMAGES:
        raise DocumentError("unsupported", f"{suffix} images need OCR, which this server's parsers do not do")
    if file_type and PurePath(filename).suffix.lower() != f".{suffix}":
        return f"{filename}.{suffix}"
    return filename


async def parsed_text(data: bytes, name: str, content_type: str | None) -> str:
    document = await parse_isolated(data, name, content_type)
    return document.text


# -- the job kind -------------------------------------------------------------------------------------------------

_services: dict[int, FileParsing] = {}


@job_kinds.register(KIND)
async def run_file_parse(ctx: JobContext) -> dict[str, Any] | None:
    service = _services.get(id(ctx.store.db))
    if service is None:  # retried later, when a server (which has one) may claim it
        raise RuntimeError("file parsing runs in a server process; this one has no file parsing service")
    return await service.run(ctx)
