"""Histories written the way glm-4-alltools clients write them, turned into ordinary tool calls.

Zhipu's clients send a finished tool round back without ``tool_calls`` ids: a user function's call is an
assistant message whose content is the literal ``arguments='{...}', name='get_x'``, and code the client ran
itself (``sandbox: "none"``), or a code round being replayed, is an assistant message holding the code. Either is
followed by a ``tool`` message with the result, with or without a ``tool_call_id``.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets

from ..protocol.chat import ChatMessage, ToolCall, ToolCallFunction

FUNCTION_LITERAL = re.compile(r"arguments='(?P<arguments>.*)', name='(?P<name>[A-Za-z0-9_-]{1,64})'", re.DOTALL)
CODE_FUNCTION = "python"  # the code interpreter's function name


def needs_replay(messages: list[ChatMessage]) -> bool:
    return any(_is_call_without_id(m, n) for m, n in itertools.pairwise(messages))


def _is_call_without_id(message: ChatMessage, following: ChatMessage | None) -> bool:
    return (
        message.role == "assistant"
        and not message.tool_calls
        and isinstance(message.content, str)
        and following is not None
        and following.role == "tool"
    )


def with_replayed_calls(messages: list[ChatMessage], *, native_code: bool) -> list[ChatMessage]:
    """``messages`` with every id-less tool round made explicit: an assistant message right before a tool
    message, with no ``tool_calls`` of its own, becomes the call the tool message answers. ``native_code``: the
    model's template writes code calls as raw code (GLM-4's python tool) rather than JSON arguments."""
    out: list[ChatMessage] = []
    for i, message in enumerate(messages):
        following = messages[i + 1] if i + 1 < len(messages) else None
        if _is_call_without_id(message, following):
            message = _as_call(str(message.content), native_code)
        elif message.role == "tool" and out and _replayed(out[-1]):
            # The answer to a call made explicit above (its own tool_call_id, if any, named nothing we know).
            message = message.model_copy(update={"tool_call_id": out[-1].tool_calls[0].id})  # type: ignore[index]
        out.append(message)
    return out


def _as_call(content: str, native_code: bool) -> ChatMessage:
    literal = FUNCTION_LITERAL.fullmatch(content.strip())
    if literal is not None:
        name, arguments = literal["name"], literal["arguments"]
    else:
        name, arguments = CODE_FUNCTION, content if native_code else json.dumps({"code": content}, ensure_ascii=False)
    call = ToolCall(id=REPLAYED + secrets.token_hex(8), function=ToolCallFunction(name=name, arguments=arguments))
    return ChatMessage(role="assistant", content=None, tool_calls=[call])


REPLAYED = "call_replayed_"


def _replayed(message: ChatMessage) -> bool:
    return bool(message.tool_calls) and (message.tool_calls[0].id or "").startswith(REPLAYED)  # type: ignore[index]
