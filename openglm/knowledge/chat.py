"""The chat ``retrieval`` tool: retrieve from a knowledge base for the user's question, fill the prompt
template's ``{{knowledge}}`` and ``{{question}}``, and let the model answer, citing chunks as ``[n]``.

It sits above the chat service like the agent loop: the request that reaches the model is an ordinary one whose
last user message is the filled template. Retrieval is the same ``Retriever.retrieve`` as the retrieval test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidFieldError
from ..protocol.chat import ChatCompletionRequest, ChatMessage, RetrievalCitation
from .retrieval import RetrievalOptions, RetrievedChunk

DEFAULT_TEMPLATE = (
    '从文档\n"""\n{{knowledge}}\n"""\n中找问题\n"""\n{{question}}\n"""\n'
    "的答案，找到答案就仅使用文档语句回答问题，并用 [编号] 标注引用的文档片段；"
    "找不到答案就用自身知识回答并且告诉用户该信息不是来自文档。不要复述问题，直接开始回答。\n"
    "Answer from the numbered document excerpts above, citing each excerpt you use as [n]; if they do not "
    "contain the answer, say so and answer from your own knowledge."
)
PLACEHOLDERS = ("{{knowledge}}", "{{question}}")


@dataclass(frozen=True)
class RetrievalTool:
    knowledge_id: str
    template: str
    options: RetrievalOptions


@dataclass
class Grounding:
    """What a retrieval did to a request: the chunks given to the model, numbered from 1."""

    chunks: list[RetrievedChunk] = field(default_factory=list)
    query_tokens: int = 0

    def citations(self) -> list[RetrievalCitation]:
        return [
            RetrievalCitation(
                index=i,
                id=item.chunk.id,
                knowledge_id=item.chunk.knowledge_id,
                document_id=item.chunk.document_id,
                document_name=item.chunk.document_name,
                position=item.chunk.position,
                start=item.chunk.start,
                end=item.chunk.end,
                page=item.chunk.page,
                score=item.score,
                text=item.chunk.text,
            )
            for i, item in enumerate(self.chunks, start=1)
        ]


def retrieval_tools(request: ChatCompletionRequest) -> list[RetrievalTool]:
    tools = []
    for i, tool in enumerate(request.tools or []):
        if tool.type != "retrieval":
            continue
        tools.append(_tool(tool.retrieval or {}, f"tools[{i}].retrieval"))
    return tools


def _tool(entry: dict[str, Any], where: str) -> RetrievalTool:
    knowledge_id = entry.get("knowledge_id")
    if not isinstance(knowledge_id, str | int) or not str(knowledge_id):
        raise InvalidFieldError(f"{where}.knowledge_id is required")
    template = entry.get("prompt_template") or DEFAULT_TEMPLATE
    if not isinstance(template, str) or not all(p in template for p in PLACEHOLDERS):
        raise InvalidFieldError(f"{where}.prompt_template must contain {{{{knowledge}}}} and {{{{question}}}}")
    try:
        options = RetrievalOptions(
            top_k=int(entry.get("top_k", 5)),
            mode=entry.get("mode", "hybrid"),
            score_threshold=None if entry.get("score_threshold") is None else float(entry["score_threshold"]),
        )
    except (TypeError, ValueError):
        raise InvalidFieldError(f"{where}: top_k and score_threshold must be numbers") from None
    if not 1 <= options.top_k <= 50 or options.mode not in ("hybrid", "vector", "keyword"):
        raise InvalidFieldError(f"{where}: top_k is 1 to 50 and mode is hybrid, vector or keyword")
    return RetrievalTool(str(knowledge_id), template, options)


def question_of(request: ChatCompletionRequest) -> tuple[int, str]:
    """The last user message: its index and its text."""
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role == "user":
            return index, _text(message)
    raise InvalidFieldError("messages: a retrieval tool needs a user message to answer")


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text or "" for part in message.content or [] if getattr(part, "text", None))


def knowledge_text(chunks: list[RetrievedChunk], first_index: int = 1) -> str:
    blocks = []
    for i, item in enumerate(chunks, start=first_index):
        where = " › ".join([item.chunk.document_name, *item.chunk.headings])
        blocks.append(f"[{i}] {where}\n{item.chunk.text}")
    return "\n\n".join(blocks)


def grounded_request(
    request: ChatCompletionRequest, tool: RetrievalTool, grounding: Grounding, question_index: int, question: str
) -> ChatCompletionRequest:
    """The request the model sees: the template filled in place of the question, the retrieval tools gone."""
    filled = tool.template.replace("{{knowledge}}", knowledge_text(grounding.chunks)).replace("{{question}}", question)
    messages = list(request.messages)
    messages[question_index] = ChatMessage(role="user", content=filled)
    tools = [t for t in request.tools or [] if t.type != "retrieval"] or None
    return request.model_copy(
        update={"messages": messages, "tools": tools, "tool_choice": request.tool_choice if tools else None}
    )
