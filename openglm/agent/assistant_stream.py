"""Agent events → assistant API chunks (../shared/reference/alltools-api.md section 4).

The same events the glm-4-alltools writer consumes, written the assistant way: text deltas
``{role: "assistant", content}``; a tool call as one chunk ``{role: "tool", tool_calls: [{type: T, T: {input}}]}``
with its whole input, then one with ``{T: {outputs}}``; the last chunk with ``finish_reason``, usage and
``status: "completed"``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..protocol.assistant import AssistantChoice, AssistantChunk, AssistantDelta
from ..protocol.chat import Usage
from ..serving.usage import Tally, new_usage_id
from .loop import AgentEvent, Finished, FunctionCall, Text, ToolInput, ToolOutputs


class AssistantWriter:
    def __init__(self, assistant_id: str, conversation_id: str):
        self.assistant_id = assistant_id
        self.conversation_id = conversation_id
        self.id = new_usage_id("asst")
        self.created = int(time.time() * 1000)
        self._pending: list[dict[str, Any]] = []  # calls whose input is still being written, in order
        self._by_id: dict[str, dict[str, Any]] = {}
        self._functions: dict[int, dict[str, Any]] = {}

    def chunk(self, delta: AssistantDelta, finish_reason: str | None = None) -> AssistantChunk:
        return AssistantChunk(
            id=self.id,
            conversation_id=self.conversation_id,
            assistant_id=self.assistant_id,
            created=self.created,
            status="in_progress",
            choices=[AssistantChoice(delta=delta, finish_reason=finish_reason)],
        )

    async def chunks(self, events: AsyncIterator[AgentEvent], tally: Tally) -> AsyncIterator[AssistantChunk]:
        async for event in events:
            if isinstance(event, ToolInput | FunctionCall):
                self._gather(event)
                continue
            for chunk in self._flush():
                yield chunk
            if isinstance(event, Text):
                yield self.chunk(AssistantDelta(content=event.text))
            elif isinstance(event, ToolOutputs):
                yield self._tool({"type": event.tool_type, event.tool_type: {"outputs": event.outputs}})
            elif isinstance(event, Finished):
                yield self._last(event, tally)
                return

    def _gather(self, event: ToolInput | FunctionCall) -> None:
        """Inputs arrive in fragments; each call is sent once, whole, when its round's calls are written."""
        if isinstance(event, ToolInput):
            call = self._by_id.get(event.call_id)
            if call is None:
                call = self._by_id[event.call_id] = {"type": event.tool_type, event.tool_type: {"input": ""}}
                self._pending.append(call)
            call[event.tool_type]["input"] += event.fragment
            return
        if event.call_id is not None or event.index not in self._functions:
            call = {"type": "function", "function": {"name": event.name or "", "arguments": ""}}
            self._functions[event.index] = call
            self._pending.append(call)
        self._functions[event.index]["function"]["arguments"] += event.arguments

    def _flush(self) -> list[AssistantChunk]:
        chunks = [self._tool(call) for call in self._pending]
        self._pending, self._by_id, self._functions = [], {}, {}
        return chunks

    def _tool(self, call: dict[str, Any]) -> AssistantChunk:
        return self.chunk(AssistantDelta(role="tool", tool_calls=[call]))

    def _last(self, event: Finished, tally: Tally) -> AssistantChunk:
        finish_reason = "stop" if event.finish_reason == "tool_calls" else event.finish_reason
        last = self.chunk(AssistantDelta(), finish_reason)
        last.status = "completed" if event.status != "failed" else "failed"
        total = tally.prompt_tokens + tally.completion_tokens
        last.usage = Usage(
            prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens, total_tokens=total
        )
        return last
