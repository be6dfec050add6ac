"""Rebuilding a streamed chat completion from its chunks, with the delta rules checked."""

from __future__ import annotations

from typing import Any


def collect_stream(stream: Any) -> dict[str, Any]:
    """Rebuild a response from chunks, checking the delta rules as it goes."""
    content, calls, finish, usage, roles = "", [], None, None, 0
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            roles += delta.role == "assistant"
            content += delta.content or ""
            for call in delta.tool_calls or []:
                if call.id is not None:
                    assert call.index == len(calls), "tool-call indexes go up in order"
                    calls.append(
                        {"id": call.id, "name": call.function.name, "arguments": call.function.arguments or ""}
                    )
                else:
                    assert call.function.name is None, "the name is sent once"
                    calls[call.index]["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                assert finish is None, "one finish_reason per choice"
                finish = choice.finish_reason
    assert roles == 1, "the role is sent once"
    return {"content": content, "calls": calls, "finish": finish, "usage": usage}
