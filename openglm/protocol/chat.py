"""Wire models for the OpenAI ``/v1`` and Zhipu ``/api/paas/v4`` chat APIs. No logic here.

Requests ignore unknown fields and treat ``null`` as absent, because both
official SDKs send fields the other does not know (``request_id``,
``do_sample``, ``stream_options``, ``thinking: null`` ...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import RequestId, SensitiveWordCheck, WireModel

# Lists a request may hold, bounded here so that pydantic refuses a long one at its 17th item instead of building
# (and the service then refusing) a million of them: prompts × n ≤ 16 generations per request, so ≤ 16 prompts.
MAX_PROMPTS = 16
MAX_STOPS = 16
MAX_LOGIT_BIASES = 1024

# -- requests -------------------------------------------------------------------


class FunctionDefinition(WireModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(WireModel):
    type: str = "function"
    function: FunctionDefinition | None = None
    # All Tools built-ins carry their options under their own type's name.
    code_interpreter: dict[str, Any] | None = None
    web_browser: dict[str, Any] | None = None
    drawing_tool: dict[str, Any] | None = None
    # Knowledge-base retrieval: {knowledge_id, prompt_template, top_k, score_threshold, mode}.
    retrieval: dict[str, Any] | None = None
    # Zhipu's web search: {enable, search_query, search_result, search_prompt, count, search_domain_filter, ...}.
    web_search: dict[str, Any] | None = None


class ToolCallFunction(WireModel):
    name: str
    arguments: str | dict[str, Any] = ""


class ToolCall(WireModel):
    id: str | None = None
    type: str = "function"
    function: ToolCallFunction


class ContentPart(WireModel):
    type: str
    text: str | None = None
    image_url: dict[str, Any] | str | None = None


class ChatMessage(WireModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function", "observation"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class NamedFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(WireModel):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(WireModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None
    # llama-cpp-python style: {"type": "json_object", "schema": {...}}
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class StreamOptions(WireModel):
    include_usage: bool | None = None


class SamplingFields(WireModel):
    """Fields shared by chat and text completions."""

    model: str = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=4.0)
    logit_bias: dict[str, float] | None = Field(default=None, max_length=MAX_LOGIT_BIASES)
    user: str | None = None
    sensitive_word_check: SensitiveWordCheck | None = None


class CharacterMeta(WireModel):
    """CharGLM's role-play persona (Zhipu's ``meta``)."""

    user_info: str | None = Field(default=None, max_length=8000)
    bot_info: str | None = Field(default=None, max_length=8000)
    bot_name: str | None = Field(default=None, max_length=100)
    user_name: str | None = Field(default=None, max_length=100)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage]
    meta: CharacterMeta | None = None
    # All Tools: the conversation whose tool state (kernel, pages, last image prompt) a request continues.
    conversation_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    # OpenGLM's extension for a catalog All Tools agent (``model``: the agent): the model its rounds run on instead
    # of its own — a chat model this server serves, or one of the caller's fine-tuned (``ft:``) models.
    agent_model: str | None = Field(default=None, min_length=1, max_length=200)
    request_id: RequestId | None = None
    user_id: str | None = None
    do_sample: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(SamplingFields):
    prompt: str | Annotated[list[str], Field(max_length=MAX_PROMPTS)]
    request_id: RequestId | None = None
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool | None = None
    grammar: str | None = None
    response_format: ResponseFormat | None = None


# -- responses ------------------------------------------------------------------


class TopLogprobOut(WireModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut] = Field(default_factory=list)


class ChoiceLogprobs(WireModel):
    content: list[TokenLogprobOut] | None = None


class FunctionCallOut(WireModel):
    name: str
    arguments: str


class ToolCallOut(WireModel):
    id: str
    type: Literal["function"] = "function"
    index: int
    function: FunctionCallOut


class AssistantMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class Choice(WireModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class Usage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RetrievalCitation(WireModel):
    """A knowledge chunk given to the model for a ``retrieval`` tool: the answer cites it as ``[index]``."""

    index: int
    id: str
    knowledge_id: str
    document_id: str
    document_name: str
    position: int
    start: int
    end: int
    page: int | None = None
    score: float
    text: str


class WebSearchItem(WireModel):
    """A web search result, as Zhipu's chat ``web_search`` (and ``/web_search``) write it."""

    title: str
    link: str
    content: str
    media: str
    icon: str = ""
    refer: str
    publish_date: str = ""


class ChatCompletion(WireModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    request_id: str
    choices: list[Choice]
    usage: Usage
    retrieval: list[RetrievalCitation] | None = None
    web_search: list[WebSearchItem] | None = None  # the chat web_search tool's results, when search_result is true


class DeltaFunction(WireModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(WireModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction


class Delta(WireModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(WireModel):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(WireModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    request_id: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    retrieval: list[RetrievalCitation] | None = None  # on the first chunk
    web_search: list[WebSearchItem] | None = None  # on the first chunk


class CompletionLogprobs(WireModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(WireModel):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(WireModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str
    context_length: int
    # OpenGLM's own: "chat", "agent" (All Tools, stream only) or "embedding", so clients can tell them apart.
    kind: Literal["chat", "agent", "embedding"] | None = None
    # OpenGLM's own, on chat models: whether a fine-tuning job can train on it here (the web app's base picker).
    fine_tunable: bool | None = None


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
