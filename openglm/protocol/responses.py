"""Wire models of OpenAI's Responses API (``/v1/responses``): the request, the response object with its output
items, and the streamed events. Requests ignore unknown fields; answers carry what the ``openai`` SDK reads. No
logic here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .common import WireModel

MAX_INPUT_ITEMS = 2048


class ResponseCreate(WireModel):
    model: str = Field(min_length=1)
    input: str | Annotated[list[dict[str, Any]], Field(max_length=MAX_INPUT_ITEMS)] = Field(default="")
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, max_length=64)
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    text: dict[str, Any] | None = None
    user: str | None = None


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


class WebSearchCallItem(BaseModel):
    id: str
    type: Literal["web_search_call"] = "web_search_call"
    status: Literal["completed"] = "completed"
    action: dict[str, Any]


class FileSearchCallItem(BaseModel):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    status: Literal["completed"] = "completed"
    queries: list[str]
    results: list[dict[str, Any]] | None = None


class CodeLogs(BaseModel):
    type: Literal["logs"] = "logs"
    logs: str


class CodeImage(BaseModel):
    type: Literal["image"] = "image"
    url: str


class CodeInterpreterCallItem(BaseModel):
    id: str
    type: Literal["code_interpreter_call"] = "code_interpreter_call"
    status: Literal["in_progress", "interpreting", "completed", "incomplete", "failed"]
    code: str | None
    container_id: str
    outputs: list[CodeLogs | CodeImage] | None = None


OutputItem = OutputMessage | FunctionCallItem | WebSearchCallItem | FileSearchCallItem | CodeInterpreterCallItem


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    model: str
    output: list[OutputItem]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    store: bool = True
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: dict[str, str] | None = None
    user: str | None = None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ResponseEvent(BaseModel):
    """One server-sent event of a streamed response: ``type``, ``sequence_number`` and the type's own fields."""

    model_config = {"extra": "allow"}

    type: str
    sequence_number: int
