"""Wire models of the assistant API (../shared/reference/alltools-api.md section 4) and of OpenGLM's own
conversation endpoints. No logic here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from .chat import Usage
from .common import MAX_PAGE, RequestId, WireModel

ConversationId = Annotated[str, StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class TextPart(WireModel):
    type: Literal["text"]
    text: str = Field(max_length=100_000)


class AssistantMessageIn(WireModel):
    role: Literal["user"]
    content: Annotated[str, StringConstraints(max_length=100_000)] | list[TextPart]


class Attachment(WireModel):
    file_id: str = Field(min_length=1, max_length=64)


class AssistantRequest(WireModel):
    assistant_id: str = Field(min_length=1, max_length=200)
    conversation_id: ConversationId | None = None
    messages: list[AssistantMessageIn] = Field(min_length=1, max_length=1)
    stream: bool | None = None
    attachments: list[Attachment] | None = Field(default=None, max_length=10)
    metadata: dict[str, Any] | None = None
    request_id: RequestId | None = None
    user_id: str | None = None
    # Listed by the docs (default glm-4-assistant: the assistant's own), never sent by the SDK (its extra_body can): a
    # catalog agent runs on the chat model or caller's fine-tuned model named; a GLM refuses one.
    model: str | None = Field(default=None, max_length=200)
    extra_parameters: dict[str, Any] | None = None
    # OpenGLM's extension (the SDK's ``extra_body``): a cap on each model round's answer.
    max_tokens: int | None = Field(default=None, ge=1)


class AssistantDelta(BaseModel):
    role: Literal["assistant", "tool"] = "assistant"
    content: str | None = None
    # {"type": T, T: {"input": ...}} then {"type": T, T: {"outputs": [...]}}; functions: {"name", "arguments"}.
    tool_calls: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AssistantChoice(BaseModel):
    # No per-choice ``metadata``: the zhipuai SDK declares it as a bare ``dict`` and cannot build one.
    index: int = 0
    delta: AssistantDelta
    finish_reason: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class AssistantChunk(BaseModel):
    id: str
    conversation_id: str
    assistant_id: str
    created: int  # milliseconds, as the platform's examples
    status: Literal["in_progress", "completed", "failed"]
    choices: list[AssistantChoice]
    usage: Usage | None = None
    last_error: ErrorInfo | None = None


class SupportQuery(WireModel):
    assistant_id_list: list[str] | None = Field(default=None, max_length=100)
    request_id: RequestId | None = None
    user_id: str | None = None


class AssistantSupport(BaseModel):
    assistant_id: str
    created_at: int
    updated_at: int
    name: str
    avatar: str
    description: str
    status: Literal["publish"] = "publish"
    tools: list[str]
    starter_prompts: list[str]


class SupportList(BaseModel):
    code: int = 200
    msg: str = "success"
    data: list[AssistantSupport]


class ConversationQuery(WireModel):
    assistant_id: str = Field(min_length=1, max_length=200)
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    page_size: int = Field(default=10, ge=1, le=100)
    request_id: RequestId | None = None
    user_id: str | None = None


class ConversationUsage(BaseModel):
    id: str
    assistant_id: str
    create_time: int
    update_time: int
    usage: Usage


class ConversationUsageList(BaseModel):
    assistant_id: str
    has_more: bool
    conversation_list: list[ConversationUsage]


class ConversationUsageResponse(BaseModel):
    code: int = 200
    msg: str = "success"
    data: ConversationUsageList


class StoredToolCall(BaseModel):
    type: str
    name: str | None = None
    input: str
    outputs: list[dict[str, Any]] | None


class ConversationMessageOut(BaseModel):
    role: str
    content: str
    tool_calls: list[StoredToolCall] | None
    attachments: list[dict[str, Any]] | None = None
    created_at: int


class ConversationOut(BaseModel):
    id: str
    assistant_id: str
    title: str
    agent_version: int | None
    created_at: int
    updated_at: int
    usage: Usage


class ConversationDetail(ConversationOut):
    messages: list[ConversationMessageOut]


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    total: int


class SuggestQuery(WireModel):
    assistant_id: str = Field(min_length=1, max_length=200)
    conversation_id: ConversationId


class SuggestList(BaseModel):
    suggest_list: list[str]
