"""Wire models of the glm-4-alltools stream (../shared/reference/alltools-api.md). No logic here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from .chat import Usage


class AllToolsDelta(BaseModel):
    role: Literal["assistant", "tool"] = "assistant"
    content: str | None = None
    # Built-in calls: {"id", "type": T, T: {"input": fragment}}; results: {"type": T, T: {"outputs": [...]}};
    # user functions: OpenAI's {"index", "id", "type": "function", "function": {"name", "arguments"}}.
    tool_calls: list[dict[str, Any]] | None = None


class AllToolsChoice(BaseModel):
    index: int = 0
    delta: AllToolsDelta
    finish_reason: str | None = None


class AllToolsChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[AllToolsChoice]
    usage: Usage | None = None
    status: Literal["completed", "requires_action", "failed"] | None = None
    # Send it back as ``conversation_id`` to continue with the same kernel and tool state.
    conversation_id: str | None = None
