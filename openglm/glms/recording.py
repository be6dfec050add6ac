"""Agent events → the turn that is stored: the answer's text and its tool calls collapsed to
``{type, input, outputs}`` (a function call also keeps its ``name``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..agent.loop import AgentEvent, Finished, FunctionCall, Text, ToolInput, ToolOutputs
from ..serving.usage import Tally
from .conversations import ConversationStore, Turn

log = logging.getLogger(__name__)


class TurnRecorder:
    def __init__(self, turn: Turn):
        self.turn = turn
        self._text: list[str] = []
        self._inputs: dict[str, dict[str, Any]] = {}  # built-in calls by call id
        self._functions: dict[int, dict[str, Any]] = {}  # function calls of the current round, by index

    def feed(self, event: AgentEvent) -> None:
        calls = self.turn.tool_calls
        if isinstance(event, Text):
            self._text.append(event.text)
        elif isinstance(event, ToolInput):
            call = self._inputs.get(event.call_id)
            if call is None:
                call = self._inputs[event.call_id] = {"type": event.tool_type, "input": "", "outputs": None}
                calls.append(call)
            call["input"] += event.fragment
        elif isinstance(event, FunctionCall):
            if event.call_id is not None or event.index not in self._functions:
                call = {"type": "function", "name": event.name or "", "input": "", "outputs": None}
                self._functions[event.index] = call
                calls.append(call)
            self._functions[event.index]["input"] += event.arguments
        elif isinstance(event, ToolOutputs):
            self._functions.clear()
            waiting = next((c for c in calls if c["outputs"] is None and c["type"] == event.tool_type), None)
            if waiting is None:
                waiting = {"type": event.tool_type, "input": "", "outputs": None}
                calls.append(waiting)
            waiting["outputs"] = event.outputs
        self.turn.answer = "".join(self._text)


class TurnSaver:
    """Where a turn goes: one account's conversation with one assistant (at the version it started with)."""

    def __init__(
        self,
        store: ConversationStore,
        account_id: str,
        conversation_id: str,
        assistant_id: str,
        agent_version: int | None,
        user: str | None,
        attachments: list[dict[str, Any]] | None = None,
        *,
        continues: bool = False,
    ):
        self.store = store
        self.account_id = account_id
        self.conversation_id = conversation_id
        self.assistant_id = assistant_id
        self.agent_version = agent_version
        self.turn = Turn(user=user, attachments=attachments or [], continues=continues)

    async def save(self) -> None:
        await self.store.record_turn(
            self.account_id, self.conversation_id, self.assistant_id, self.agent_version, self.turn
        )

    async def record(self, events: AsyncIterator[AgentEvent], tally: Tally) -> AsyncIterator[AgentEvent]:
        """Pass events through, feeding each one handed out into the turn; when the stream ends, however it ends,
        store the turn (a client that hung up gets what it was sent). A stream that failed before anything was
        delivered stores nothing. A write that fails is logged; the answer the client got stands."""
        recorder = TurnRecorder(self.turn)
        delivered = saved = False
        try:
            async for event in events:
                if isinstance(event, Finished):  # the answer is whole: store it before the last chunk goes out
                    saved = True
                    try:
                        await asyncio.shield(self._spawn(tally))
                    except Exception:  # the answer was delivered: a failed write is logged, not the client's error
                        log.warning("conversation %s: its turn was not stored (the write failed)", self.conversation_id)
                recorder.feed(event)  # handed out: the client has it, or had it on its way when it left
                delivered = True
                yield event
        finally:
            if delivered and not saved:
                self._spawn(tally)

    def _spawn(self, tally: Tally) -> asyncio.Task[None]:
        self.turn.prompt_tokens, self.turn.completion_tokens = tally.prompt_tokens, tally.completion_tokens
        return self.store.spawn(self.save())
