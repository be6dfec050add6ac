"""The ``code_interpreter`` built-in of the Responses API. A request with it runs as an All Tools agent on the
model it names (``runs/responses.py``); this module writes that run's events (``agent/loop.py``) as the Responses
events and output items, and says what the run leaves for the next turn and which sandbox it used.

    output: per round, a message for what the model wrote, then a ``code_interpreter_call`` item per code call
            (its code, its container, its outputs: logs, images), then ``function_call`` items for user functions
            the agent handed back (the run ends there, as OpenAI's does)
    events: added (in_progress) → ``response.code_interpreter_call.in_progress`` → ``…_call_code.delta`` as the
            model writes the code → ``…_call_code.done`` and ``….interpreting`` when the round's calls are
            written → ``….completed`` and the item done when the kernel answers
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..agent.loop import AgentEvent, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput, ToolOutputs
from ..protocol.chat import ChatMessage
from ..protocol.responses import (
    CodeImage,
    CodeInterpreterCallItem,
    CodeLogs,
    ResponseEvent,
    ResponseObject,
    ResponseUsage,
)
from ..serving.usage import Tally, new_usage_id
from .convert import ItemEvents, Message, Plan, new_id


class AgentEventWriter(ItemEvents):
    """Agent events → Responses events: the ``Writer`` that ``runs/agents.py`` streams the run through (``id``
    is its usage id). The interpreter is the only built-in such a run is offered, so every streamed tool input
    is code and every function call a user function's."""

    def __init__(
        self, response: ResponseObject, container_id: str, finish: Callable[[ResponseObject], Awaitable[None]]
    ):
        super().__init__(response, finish)
        self.id = new_usage_id("chatcmpl")
        self.container_id = container_id
        self.writing: dict[str, CodeInterpreterCallItem] = {}  # code calls the model is writing, by the agent's id
        self.running: list[CodeInterpreterCallItem] = []  # calls written whole, awaiting their outputs, in order

    async def chunks(self, events: AsyncIterator[AgentEvent], tally: Tally) -> AsyncIterator[ResponseEvent]:
        for event in self.started():
            yield ResponseEvent.model_validate(event)
        async for agent_event in events:
            if isinstance(agent_event, Finished):
                # The tally holds every round of the run: the usage the call is billed for.
                usage = ResponseUsage(
                    input_tokens=tally.prompt_tokens,
                    output_tokens=tally.completion_tokens,
                    total_tokens=tally.prompt_tokens + tally.completion_tokens,
                )
                written = await self.completed(agent_event.finish_reason, usage)
            else:
                written = self._written(agent_event)
            for event in written:
                yield ResponseEvent.model_validate(event)
            if isinstance(agent_event, Finished):
                return

    def _written(self, event: AgentEvent) -> list[dict[str, Any]]:
        if isinstance(event, Text):
            return self.text(event.text)
        if isinstance(event, ToolInput):
            return self._code(event)
        if isinstance(event, FunctionCall):
            opened = [] if event.index in self.calls else self.close_message(False)
            return [*opened, *self.function_call(event.index, event.call_id, event.name, event.arguments)]
        if isinstance(event, ToolCallsEnd):
            return [*self.close_message(False), *self._interpreting(), *self.close_calls()]
        assert isinstance(event, ToolOutputs)
        return self._outputs(event)

    def _code(self, event: ToolInput) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        item = self.writing.get(event.call_id)
        if item is None:
            events += self.close_message(False)  # what the model wrote before the code is a message of its own
            item = CodeInterpreterCallItem(
                id=new_id("ci"), status="in_progress", code="", container_id=self.container_id
            )
            self.writing[event.call_id] = item
            events.append(self.added(item))
            events.append(self._call_event("response.code_interpreter_call.in_progress", item))
        item.code = (item.code or "") + event.fragment
        events.append(self._call_event("response.code_interpreter_call_code.delta", item, delta=event.fragment))
        return events

    def _interpreting(self) -> list[dict[str, Any]]:
        """The round's code is written whole: the kernel runs it now."""
        events: list[dict[str, Any]] = []
        for item in self.writing.values():
            item.status = "interpreting"
            events.append(self._call_event("response.code_interpreter_call_code.done", item, code=item.code))
            events.append(self._call_event("response.code_interpreter_call.interpreting", item))
        self.running += self.writing.values()
        self.writing = {}
        return events

    def _outputs(self, event: ToolOutputs) -> list[dict[str, Any]]:
        """The loop runs a round's calls in order and answers each with one ``ToolOutputs``."""
        if not self.running:
            return []
        item = self.running.pop(0)
        item.outputs = interpreter_outputs(event.outputs)
        item.status = "completed"
        return [self._call_event("response.code_interpreter_call.completed", item), self.done(item)]

    def close(self, incomplete: bool) -> list[dict[str, Any]]:
        """Besides the message and function calls: code the run never ran (it reached its round limit, or
        content safety ended it) is done as incomplete."""
        events = super().close(incomplete)
        for item in self.writing.values():
            events.append(self._call_event("response.code_interpreter_call_code.done", item, code=item.code))
        for item in [*self.writing.values(), *self.running]:
            item.status = "incomplete"
            events.append(self.done(item))
        self.writing, self.running = {}, []
        return events

    def _call_event(self, kind: str, item: CodeInterpreterCallItem, **fields: Any) -> dict[str, Any]:
        return self.event(kind, output_index=self.output.index(item), item_id=item.id, **fields)


def interpreter_outputs(outputs: list[dict[str, Any]]) -> list[CodeLogs | CodeImage]:
    """The code interpreter's outputs (``agent/tools/code_interpreter.py``) in OpenAI's two kinds: logs as they
    are, images as image outputs. Other files the code wrote (OpenAI keeps those as container files, which do not
    exist here) become a line of logs with their name and link, so the client still gets them."""
    out: list[CodeLogs | CodeImage] = []
    for output in outputs:
        if output.get("type") == "logs":
            out.append(CodeLogs(logs=str(output.get("logs") or "")))
        elif output.get("type") == "file":
            url, name = str(output.get("file") or ""), output.get("name")
            if is_image(url, name):
                out.append(CodeImage(url=url))
            else:
                out.append(CodeLogs(logs=f"[file {name or 'written'}: {url}]"))
    return out


def is_image(url: str, name: Any) -> bool:
    if url.startswith("data:"):
        return url.startswith("data:image/")
    media_type = mimetypes.guess_type(name)[0] if isinstance(name, str) else None
    return bool(media_type and media_type.startswith("image/"))


def conversation_after_run(plan: Plan, history: list[Message], rounds: list[ChatMessage]) -> list[Message]:
    """The chat messages a follow-up continues from: the history, this input, and the run's rounds as the agent
    wrote them into its own history — each call with its arguments, each kernel's answer as the ``tool`` message
    the model read (so a follow-up, agent or plain model, sees what the interpreter did). A round content safety
    cut short never reached that history."""
    return [*history, *plan.new_messages, *(m.model_dump(mode="json", exclude_none=True) for m in rounds)]


def previous_container(previous: ResponseObject | None) -> str | None:
    """The container of the previous response's last code_interpreter_call: where ``{"type": "auto"}`` goes on
    (its kernel's variables and files are still there while it lives), as OpenAI's auto containers do."""
    calls = [i for i in previous.output if isinstance(i, CodeInterpreterCallItem)] if previous else []
    return calls[-1].container_id if calls else None
