"""A GLM's chat request: its creator's instructions and tools put into the caller's request, and the user text a
stored turn keeps."""

from __future__ import annotations

from ..protocol.chat import ChatCompletionRequest, ChatMessage, ToolDefinition
from ..protocol.glms import AgentConfig


def glm_request(body: ChatCompletionRequest, config: AgentConfig) -> ChatCompletionRequest:
    """The creator's instructions lead; the GLM's built-ins (retrieval over its knowledge bases) and the caller's
    own function tools are offered; built-ins the GLM does not enable are not."""
    tools = [builtin_entry(tool, config.knowledge_ids) for tool in config.tools]
    tools += [t for t in body.tools or [] if t.type == "function"]
    return body.model_copy(
        update={"tools": tools or None, "messages": with_instructions(body.messages, config.instructions)}
    )


def builtin_entry(tool: str, knowledge_ids: list[str]) -> ToolDefinition:
    if tool == "retrieval":
        return ToolDefinition(type="retrieval", retrieval={"knowledge_ids": knowledge_ids})
    return ToolDefinition(type=tool)


def with_instructions(messages: list[ChatMessage], instructions: str) -> list[ChatMessage]:
    """The creator's instructions lead the system prompt; a caller's own system message follows them."""
    if not instructions:
        return messages
    own = "\n\n".join(m.content for m in messages if m.role == "system" and isinstance(m.content, str) and m.content)
    system = ChatMessage(role="system", content=instructions + (f"\n\n{own}" if own else ""))
    return [system, *(m for m in messages if m.role != "system")]


def turn_user_text(body: ChatCompletionRequest) -> str | None:
    """The user message a GLM chat turn stores: the last one; none when the request continues after the caller's
    function results (a last ``tool`` message: that user message was stored with the turn that called them)."""
    if body.messages and body.messages[-1].role == "tool":
        return None
    return last_user_text(body)


def last_user_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            return message_text(message.content)
    return ""


def message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(getattr(part, "text", None) or "") for part in content)
    return ""
