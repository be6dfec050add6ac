"""A run's outcome as one JSON answer, for work nobody is streaming to (async results, batch lines): a collected
answer as it is; an All Tools agent's stream folded into the message a sync caller would have read from it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..protocol.alltools import AllToolsChunk
from .outcome import Collected, Outcome, Streamed


async def collect(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Collected):
        result = await outcome.result
        assert isinstance(result, BaseModel)
        return result.model_dump(mode="json", exclude_none=True)
    assert isinstance(outcome, Streamed)
    fold = AgentFold()
    try:
        async for chunk in outcome.chunks:
            assert isinstance(chunk, AllToolsChunk)
            fold.add(chunk)
    finally:
        outcome.close()
    return fold.completion()


class AgentFold:
    """glm-4-alltools chunks → ``{id, created, model, choices: [{message, finish_reason}], usage, status}``: the
    text the agent wrote (across its rounds), and every tool call it made with its input and outputs, in order
    (built-ins as ``{id, type, T: {input, outputs}}``, user functions as OpenAI's ``function`` calls)."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self._builtins: dict[str, dict[str, Any]] = {}  # built-in calls by id, as their input streams in
        self.finish_reason: str | None = None
        self.tail: dict[str, Any] = {}

    def add(self, chunk: AllToolsChunk) -> None:
        if not self.head:
            self.head = {"id": chunk.id, "created": chunk.created, "model": chunk.model}
        choice = chunk.choices[0]
        if choice.delta.content:
            self.text.append(choice.delta.content)
        for call in choice.delta.tool_calls or []:
            self._call(call, output=choice.delta.role == "tool", whole=choice.finish_reason is not None)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            self.tail = chunk.model_dump(mode="json", include={"usage", "status", "conversation_id"}, exclude_none=True)

    def _call(self, call: dict[str, Any], *, output: bool, whole: bool) -> None:
        kind = call.get("type")
        if kind == "function":
            if whole:  # the chunk that ends the calls has each one whole; earlier ones repeat its name only
                self.calls.append({k: v for k, v in call.items() if k != "index"})
            return
        if not isinstance(kind, str):
            return
        body = call.get(kind) or {}
        if output:
            pending = [c for c in self.calls if c["type"] == kind and "outputs" not in c[kind]]
            if pending:
                pending[0][kind]["outputs"] = body.get("outputs", [])
            return
        entry = self._builtins.get(call.get("id") or "")
        if entry is None:
            entry = {"id": call.get("id"), "type": kind, kind: {"input": ""}}
            self._builtins[call.get("id") or ""] = entry
            self.calls.append(entry)
        entry[kind]["input"] += body.get("input") or ""

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text)}
        if self.calls:
            message["tool_calls"] = self.calls
        choice = {"index": 0, "finish_reason": self.finish_reason or "stop", "message": message}
        return {**self.head, "object": "chat.completion", "choices": [choice], **self.tail}
