"""The chat ``web_search`` tool, as Zhipu's chat API defines it:

    {"type": "web_search", "web_search": {"enable": true, "search_query": "...", "search_result": true,
     "search_prompt": "... {{search_result}} ...", "count": 5, "search_domain_filter": "...",
     "search_recency_filter": "oneWeek", "content_size": "medium", "search_engine": "search_std"}}

Enabled (the default once the tool is sent), the question — ``search_query``, else the last user message — is
searched and the results lead the conversation as a system message (``search_prompt``, or OpenGLM's own, with
``{{search_result}}`` filled in); the model answers citing them as ``[ref_n]``. ``search_result: true`` returns the
results with the answer (``web_search``, on the first chunk of a stream). ``enable: false`` turns search off for
the request. The tool itself never reaches the model: it is the platform's, not a function to call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidFieldError
from ..protocol.chat import ChatCompletionRequest, ChatMessage, WebSearchItem
from ..serving.messages import last_user_text
from .search import SearchOptions, WebResult, search_options

PLACEHOLDER = "{{search_result}}"
DEFAULT_PROMPT = (
    "以下是与用户问题相关的网络搜索结果（[ref_n] 为编号）：\n\n{{search_result}}\n\n"
    "请根据这些搜索结果回答用户的问题，引用时用 [ref_n] 标注；搜索结果中没有答案时，说明这一点再用自身知识回答。\n"
    "Answer from the web search results above, citing each one you use as [ref_n]; if they do not answer the "
    "question, say so and answer from your own knowledge."
)


@dataclass(frozen=True)
class WebSearchTool:
    options: SearchOptions | None  # None: the request turned search off
    show_results: bool = False
    prompt: str = DEFAULT_PROMPT


def web_search_tool(request: ChatCompletionRequest) -> WebSearchTool | None:
    """The request's ``web_search`` tool, checked; None when it sends none."""
    tools = [(i, t) for i, t in enumerate(request.tools or []) if t.type == "web_search"]
    if not tools:
        return None
    if len(tools) > 1:
        raise InvalidFieldError("tools: at most one web_search tool")
    i, tool = tools[0]
    entry: dict[str, Any] = tool.web_search or {}
    where = f"tools[{i}].web_search"
    if not _flag(entry.get("enable", True), f"{where}.enable"):
        return WebSearchTool(None)
    prompt = entry.get("search_prompt") or DEFAULT_PROMPT
    if not isinstance(prompt, str) or PLACEHOLDER not in prompt:
        raise InvalidFieldError(f"{where}.search_prompt must contain {PLACEHOLDER}")
    query = entry.get("search_query") or last_user_text(request.messages)
    try:
        options = search_options(
            query,
            count=entry.get("count"),
            domain=entry.get("search_domain_filter"),
            recency=entry.get("search_recency_filter"),
            content_size=entry.get("content_size"),
            engine=entry.get("search_engine"),
            default_count=5,
        )
    except InvalidFieldError as exc:
        raise InvalidFieldError(f"{where}: {exc.message}") from None
    return WebSearchTool(options, _flag(entry.get("search_result", False), f"{where}.search_result"), prompt)


def without_web_search(request: ChatCompletionRequest) -> ChatCompletionRequest:
    tools = [t for t in request.tools or [] if t.type != "web_search"]
    return request.model_copy(update={"tools": tools or None})


def grounded(request: ChatCompletionRequest, results: list[WebResult], prompt: str) -> ChatCompletionRequest:
    """The request the model answers: the results leading the conversation, the tool taken out."""
    listing = "\n\n".join(f"[{r.refer}] {r.title} ({r.link})\n{r.content}" for r in results) or "(no results)"
    head = ChatMessage(role="system", content=prompt.replace(PLACEHOLDER, listing))
    return without_web_search(request).model_copy(update={"messages": [head, *request.messages]})


def items(results: list[WebResult]) -> list[WebSearchItem]:
    return [
        WebSearchItem(
            title=r.title, link=r.link, content=r.content, media=r.media, refer=r.refer, publish_date=r.publish_date
        )
        for r in results
    ]


def _flag(value: object, where: str) -> bool:
    """Zhipu's SDKs send booleans; some clients send "true" / "false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidFieldError(f"{where} must be true or false")
