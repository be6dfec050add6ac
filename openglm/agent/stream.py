"""Agent events → glm-4-alltools chunks."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from ..api.alltools_schemas import AllToolsChoice, AllToolsChunk, AllToolsDelta
from ..api.schemas import Usage
from ..serving.usage import Tally
from .loop import AgentEvent, AgentRun, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput, ToolOutputs


class AllToolsWriter:
    def __init__(self, run: AgentRun, model: str):
        self.run = run
        self.model = model
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())

    def chunk(self, delta: AllToolsDelta, finish_reason: str | None = None) -> AllToolsChunk:
        return AllToolsChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[AllToolsChoice(delta=delta, finish_reason=finish_reason)],
        )

    async def chunks(self, events: AsyncIterator[AgentEvent], tally: Tally) -> AsyncIterator[AllToolsChunk]:
        async for event in events:
            if isinstance(event, Finished):
                last = self.chunk(AllToolsDelta(), event.finish_reason)
                total = tally.prompt_tokens + tally.completion_tokens
                last.usage = Usage(
                    prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens, total_tokens=total
                )
                last.status = event.status  # type: ignore[assignment]
                last.conversation_id = self.run.conversation
                yield last
                return
            yield self.chunk(*self._delta(event))

    def _delta(self, event: AgentEvent) -> tuple[AllToolsDelta, str | None]:
        if isinstance(event, Text):
            return AllToolsDelta(content=event.text), None
        if isinstance(event, ToolInput):
            call = {"id": event.call_id, "type": event.tool_type, event.tool_type: {"input": event.fragment}}
            return AllToolsDelta(tool_calls=[call]), None
        if isinstance(event, FunctionCall):
            function: dict[str, str] = {"arguments": event.arguments}
            if event.name is not None:
                function["name"] = event.name
            entry: dict[str, Any] = {"index": event.index, "type": "function", "function": function}
            if event.call_id is not None:
                entry["id"] = event.call_id
            return AllToolsDelta(tool_calls=[entry]), None
        if isinstance(event, ToolCallsEnd):
            return AllToolsDelta(), "tool_calls"
        assert isinstance(event, ToolOutputs)
        return AllToolsDelta(
            role="tool", tool_calls=[{"type": event.tool_type, event.tool_type: {"outputs": event.outputs}}]
        ), None
