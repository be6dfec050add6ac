"""Agent events → glm-4-alltools chunks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..protocol.alltools import AllToolsChoice, AllToolsChunk, AllToolsDelta
from ..protocol.chat import Usage
from ..serving.usage import Tally, new_usage_id
from .loop import AgentEvent, AgentRun, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput, ToolOutputs


class AllToolsWriter:
    """Function calls are written as glm-4-alltools writes them: while the model writes one, chunks repeat its
    name with empty ``arguments``; the whole ``arguments`` string comes once, in the chunk that ends the calls
    (``finish_reason: "tool_calls"``). A client that joins argument fragments, OpenAI-style, gets the same text."""

    def __init__(self, run: AgentRun, model: str):
        self.run = run
        self.model = model
        self.id = new_usage_id("chatcmpl")
        self.created = int(time.time())
        self._functions: dict[int, dict[str, Any]] = {}  # calls being written, by index, with their arguments

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
                last = self.chunk(AllToolsDelta(tool_calls=self._whole_functions()), event.finish_reason)
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
            return AllToolsDelta(tool_calls=[self._function_in_progress(event)]), None
        if isinstance(event, ToolCallsEnd):
            return AllToolsDelta(tool_calls=self._whole_functions()), "tool_calls"
        assert isinstance(event, ToolOutputs)
        return AllToolsDelta(
            role="tool", tool_calls=[{"type": event.tool_type, event.tool_type: {"outputs": event.outputs}}]
        ), None

    def _function_in_progress(self, event: FunctionCall) -> dict[str, Any]:
        call = self._functions.setdefault(event.index, {"index": event.index, "type": "function", "arguments": ""})
        if event.call_id is not None:
            call["id"] = event.call_id
        if event.name is not None:
            call["name"] = event.name
        call["arguments"] += event.arguments
        return self._entry(call, "")

    def _whole_functions(self) -> list[dict[str, Any]] | None:
        calls = [self._entry(call, call["arguments"]) for call in self._functions.values()]
        self._functions.clear()
        return calls or None

    @staticmethod
    def _entry(call: dict[str, Any], arguments: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": call["index"], "type": "function"}
        if "id" in call:
            entry["id"] = call["id"]
        entry["function"] = {"name": call.get("name", ""), "arguments": arguments}
        return entry
