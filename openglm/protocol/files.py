"""Wire models of the files API (OpenAI's and Zhipu's shapes). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class ParserTaskCreated(BaseModel):
    """Zhipu's ``POST /files/parser/create`` answer."""

    task_id: str
    message: str
    success: bool


class ParserResult(BaseModel):
    """Zhipu's parse result: ``content`` for ``format_type`` text, ``parsing_result_url`` for download_link."""

    status: Literal["processing", "succeeded", "failed"]
    message: str
    task_id: str
    content: str | None = None
    parsing_result_url: str | None = None
