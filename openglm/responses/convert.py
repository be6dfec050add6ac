"""The Responses API in terms of chat: a request's input items, instructions and tools as a chat request (on the
conversation a ``previous_response_id`` left), and a chat answer — collected or streamed — as output items and
events.

    input: a string (one user message) or items — messages (input_text / output_text parts; input_image parts go
           on as image parts, refused by models that cannot see), function_call and function_call_output, and
           code_interpreter_call items sent back (the interpreter's call and its logs)
    tools: function → chat function tools; web_search (and web_search_preview) → the chat web_search tool (its
           results become a web_search_call item and url_citation annotations on [ref_n]); file_search →
           the chat retrieval tool on the knowledge bases named as vector_store_ids (a file_search_call item);
           code_interpreter → the All Tools code_interpreter tool (its container's file_ids in its workspace), the
           request then running as an agent (``responses/interpreter.py`` writes its items; with web_search,
           file_search or images it is refused: 1212)
    output: web_search_call / file_search_call, then the message, then function_call items

``ItemEvents`` numbers the streamed events and writes the message and function call items; ``EventWriter`` drives
it from chat chunks, ``interpreter.AgentEventWriter`` from an agent's events.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..agent.replay import CODE_FUNCTION
from ..errors import InvalidFieldError, UnsupportedError
from ..protocol.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
from ..protocol.responses import (
    FileSearchCallItem,
    FunctionCallItem,
    OutputItem,
    OutputMessage,
    OutputText,
    ResponseCreate,
    ResponseObject,
    ResponseUsage,
    WebSearchCallItem,
)
from ..serving.messages import last_user_text
from ..serving.service import has_image_parts

Message = dict[str, Any]
TEXT_PARTS = ("input_text", "output_text", "text")
IMAGE_PARTS = ("input_image",)
_REF = re.compile(r"\[ref_(\d+)\]")
CONTAINER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Builtins:
    """The built-ins a request's tools name. ``code_interpreter``: the request runs as an All Tools agent;
    ``container``: the sandbox it named (a string container id), None for ``{"type": "auto"}``."""

    web_search: bool = False
    file_search: bool = False
    code_interpreter: bool = False
    container: str | None = None


@dataclass
class Plan:
    """What a Responses request becomes: the chat request, the new input as chat messages (kept for the next
    turn), and which built-ins it used."""

    chat: ChatCompletionRequest
    new_messages: list[Message]
    builtins: Builtins = field(default_factory=Builtins)
    input_items: list[dict[str, Any]] = field(default_factory=list)


def plan(body: ResponseCreate, history: list[Message]) -> Plan:
    new = input_messages(body.input)
    messages: list[Message] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    messages += history + new
    tools, builtins = chat_tools(body.tools or [])
    request: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "tools": tools or None,
        "tool_choice": chat_tool_choice(body.tool_choice, builtins),
        "parallel_tool_calls": body.parallel_tool_calls,
        "max_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stream": bool(body.stream),
        "response_format": response_format(body.text),
        "user": body.user,
    }
    if body.stream:
        request["stream_options"] = {"include_usage": True}
    try:
        chat = ChatCompletionRequest.model_validate({k: v for k, v in request.items() if v is not None})
    except ValueError as exc:
        raise InvalidFieldError(f"input: {exc}") from None
    if builtins.code_interpreter and has_image_parts(chat):
        raise UnsupportedError(
            "input: images with code_interpreter are not offered here (the code interpreter runs as an All Tools "
            "agent, whose rounds do not take images); send the images without code_interpreter"
        )
    items = [body.input] if isinstance(body.input, str) else body.input
    stored = [{"type": "message", "role": "user", "content": i} if isinstance(i, str) else i for i in items]
    return Plan(chat, new, builtins, [{"id": new_id("item"), **item} for item in stored])


def input_messages(given: str | list[dict[str, Any]]) -> list[Message]:
    if isinstance(given, str):
        if not given:
            raise InvalidFieldError("input: a string or a list of input items is required")
        return [{"role": "user", "content": given}]
    if not given:
        raise InvalidFieldError("input: at least one input item")
    messages: list[Message] = []
    for i, item in enumerate(given):
        kind = item.get("type") or ("message" if "role" in item else None)
        where = f"input[{i}]"
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or ""),
                "type": "function",
                "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
                last["tool_calls"].append(call)  # several calls of one turn: one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": content})
        elif kind == "code_interpreter_call":
            messages += _code_call(item)
        else:
            raise InvalidFieldError(f"{where}: input items of type {kind!r} are not supported here")
    return messages


def _code_call(item: dict[str, Any]) -> list[Message]:
    """A code_interpreter_call item sent back (a client that keeps the conversation itself): the interpreter's
    call, and its logs as the tool message the model reads (stripped, as the interpreter's observation is)."""
    call_id = str(item.get("id") or new_id("ci"))
    code = json.dumps({"code": str(item.get("code") or "")}, ensure_ascii=False)
    outputs = item.get("outputs") or []
    logs = "".join(str(o.get("logs") or "") for o in outputs if isinstance(o, dict) and o.get("type") == "logs")
    call = {"id": call_id, "type": "function", "function": {"name": CODE_FUNCTION, "arguments": code}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": logs.strip() or "[no output]"},
    ]


def _message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise InvalidFieldError(f"{where}.role must be user, system, developer or assistant")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidFieldError(f"{where}.content: a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind in IMAGE_PARTS:
            parts.append({"type": "image_url", "image_url": {"url": str(part.get("image_url") or "")}})
        else:
            raise InvalidFieldError(f"{where}.content[{j}]: content parts of type {kind!r} are not supported here")
    return {"role": role, "content": parts}


def chat_tools(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Builtins]:
    out: list[dict[str, Any]] = []
    builtins = Builtins()
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
            out.append({"type": "function", "function": function})
        elif kind in ("web_search", "web_search_preview"):
            builtins.web_search = True
            out.append({"type": "web_search", "web_search": {"enable": True, "search_result": True}})
        elif kind == "file_search":
            builtins.file_search = True
            stores = tool.get("vector_store_ids") or []
            if not stores:
                raise InvalidFieldError(f"tools[{i}].vector_store_ids: the knowledge bases to search")
            top_k = tool.get("max_num_results") or 5
            out += [{"type": "retrieval", "retrieval": {"knowledge_id": s, "top_k": top_k}} for s in stores]
        elif kind == "code_interpreter":
            if builtins.code_interpreter:
                raise UnsupportedError(f"tools[{i}]: one code_interpreter per response")
            builtins.code_interpreter = True
            builtins.container, file_ids = container_of(tool.get("container"), f"tools[{i}].container")
            out.append({"type": "code_interpreter", "code_interpreter": {"file_ids": file_ids}})
        else:
            raise UnsupportedError(
                f"tools[{i}]: {kind!r} is not offered by the Responses API here (function, web_search, file_search "
                "and code_interpreter are)"
            )
    if builtins.code_interpreter:
        interpreter_alone(out, builtins)
    return out, builtins


def container_of(container: Any, where: str) -> tuple[str | None, list[str]]:
    """A code_interpreter's ``container``: a container id (the sandbox of that id in the caller's account, made
    fresh when it has none) or ``{"type": "auto", "file_ids": [...]}`` (None: the runs layer picks one); and the
    files to put in its workspace."""
    if isinstance(container, str):
        if not CONTAINER_ID.fullmatch(container):
            raise InvalidFieldError(f"{where}: a container id is 1-64 letters, digits, '_' or '-'")
        return container, []
    if not isinstance(container, dict) or container.get("type", "auto") != "auto":
        raise InvalidFieldError(f'{where}: a container id, or {{"type": "auto"}}')
    file_ids = container.get("file_ids") or []
    if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
        raise InvalidFieldError(f"{where}.file_ids: a list of file ids")
    return None, file_ids


def interpreter_alone(tools: list[dict[str, Any]], builtins: Builtins) -> None:
    """code_interpreter runs the request as an All Tools agent: function tools go along (the agent hands their
    calls back), but web_search and file_search ground a single chat call and have no place in its rounds, and
    a function may not take the interpreter's own name."""
    if builtins.web_search or builtins.file_search:
        raise UnsupportedError(
            "tools: code_interpreter cannot be combined with web_search or file_search here; send them in "
            "separate responses"
        )
    for i, tool in enumerate(tools):
        if tool["type"] == "function" and tool["function"].get("name") == CODE_FUNCTION:
            raise InvalidFieldError(f"tools[{i}].name: {CODE_FUNCTION!r} is the code interpreter's own function")


def chat_tool_choice(choice: str | dict[str, Any] | None, builtins: Builtins) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "code_interpreter" and builtins.code_interpreter:
        return {"type": "function", "function": {"name": CODE_FUNCTION}}  # the agent offers it as this function
    raise InvalidFieldError("tool_choice: auto, none, required, {type: function, name} or {type: code_interpreter}")


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidFieldError(f"text.format.type: text, json_object or json_schema, not {kind!r}")


# -- answers --------------------------------------------------------------------------------------------------------


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "sensitive":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def usage_of(usage: Usage | None) -> ResponseUsage | None:
    if usage is None:
        return None
    return ResponseUsage(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def url_citations(text: str, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[ref_n]`` in a web-grounded answer as OpenAI's url_citation annotations."""
    found = []
    for match in _REF.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(sources):
            source = sources[n - 1]
            found.append(
                {
                    "type": "url_citation",
                    "start_index": match.start(),
                    "end_index": match.end(),
                    "url": source["link"],
                    "title": source["title"],
                }
            )
    return found


def search_items(completion: ChatCompletion | ChatCompletionChunk, plan: Plan) -> list[OutputItem]:
    """The built-ins' own items, first in the output: what was searched and what was found."""
    items: list[OutputItem] = []
    question = last_user_text(plan.chat.messages)
    if plan.builtins.web_search:
        sources = [{"type": "url", "url": r.link} for r in completion.web_search or []]
        action = {"type": "search", "query": question, "sources": sources}
        items.append(WebSearchCallItem(id=new_id("ws"), action=action))
    if plan.builtins.file_search:
        results = [
            {"file_id": c.document_id, "filename": c.document_name, "score": c.score, "text": c.text}
            for c in completion.retrieval or []
        ]
        items.append(FileSearchCallItem(id=new_id("fs"), queries=[question], results=results))
    return items


def collected_output(completion: ChatCompletion, plan: Plan) -> tuple[list[OutputItem], str, dict[str, str] | None]:
    if len(completion.choices) != 1:
        raise InvalidFieldError("the Responses API answers with one choice")
    choice = completion.choices[0]
    status, incomplete = status_of(choice.finish_reason)
    items = search_items(completion, plan)
    sources = [r.model_dump() for r in completion.web_search or []]
    text = choice.message.content or ""
    if text:
        part = OutputText(text=text, annotations=url_citations(text, sources))
        items.append(
            OutputMessage(id=new_id("msg"), status="incomplete" if incomplete else "completed", content=[part])
        )
    for call in choice.message.tool_calls or []:
        items.append(
            FunctionCallItem(
                id=new_id("fc"),
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments,
                status="completed",
            )
        )
    return items, status, incomplete


def conversation_after(plan: Plan, history: list[Message], output: list[OutputItem]) -> list[Message]:
    """The chat messages a follow-up continues from: the history, this input, this answer (not the instructions:
    a follow-up brings its own, as OpenAI's API defines it)."""
    text = "".join(p.text for item in output if isinstance(item, OutputMessage) for p in item.content)
    calls = [
        {"id": i.call_id, "type": "function", "function": {"name": i.name, "arguments": i.arguments}}
        for i in output
        if isinstance(i, FunctionCallItem)
    ]
    answer: Message = {"role": "assistant", "content": text or None}
    if calls:
        answer["tool_calls"] = calls
    return [*history, *plan.new_messages, *([answer] if text or calls else [])]


# -- streamed events ------------------------------------------------------------------------------------------------


class ItemEvents:
    """A response's events as its output is written, in the order the openai SDK's stream accumulator checks:
    created, in_progress, then per output item added → (parts and deltas) → done, then completed (or
    incomplete); ``sequence_number`` counts from 0. Holds the items every writer makes — a message (its one
    text part, text deltas) and function calls (argument deltas) — while they are written. ``finish`` is given
    the final response when the stream ends whole."""

    def __init__(self, response: ResponseObject, finish: Callable[[ResponseObject], Awaitable[None]]):
        self.response = response
        self.finish = finish
        self.sequence = 0
        self.output: list[OutputItem] = []
        self.message: OutputMessage | None = None  # the message being written
        self.calls: dict[int, FunctionCallItem] = {}  # the function calls being written, by index
        self.sources: list[dict[str, Any]] = []  # the web results its [ref_n] cite
        self.final: ResponseObject | None = None  # once completed

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def started(self) -> list[dict[str, Any]]:
        dumped = self.response.model_dump(mode="json")
        return [self.event("response.created", response=dumped), self.event("response.in_progress", response=dumped)]

    def added(self, item: OutputItem) -> dict[str, Any]:
        index = len(self.output)
        self.output.append(item)
        return self.event("response.output_item.added", output_index=index, item=item.model_dump(mode="json"))

    def done(self, item: OutputItem) -> dict[str, Any]:
        index = self.output.index(item)
        return self.event("response.output_item.done", output_index=index, item=item.model_dump(mode="json"))

    def whole_item(self, item: OutputItem) -> list[dict[str, Any]]:
        return [self.added(item), self.done(item)]

    def text(self, text: str | None) -> list[dict[str, Any]]:
        if not text:
            return []
        events: list[dict[str, Any]] = []
        if self.message is None:
            self.message = OutputMessage(id=new_id("msg"), status="in_progress", content=[])
            events.append(self.added(self.message))
            self.message.content.append(OutputText(text=""))
            events.append(self._part_event("response.content_part.added", OutputText(text="").model_dump(mode="json")))
        self.message.content[0].text += text
        events.append(self._text_event("response.output_text.delta", delta=text))
        return events

    def function_call(
        self, index: int, call_id: str | None, name: str | None, arguments: str | None
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        current = self.calls.get(index)
        if current is None:
            current = FunctionCallItem(
                id=new_id("fc"), call_id=call_id or new_id("call"), name=name or "", arguments="", status="in_progress"
            )
            self.calls[index] = current
            events.append(self.added(current))
        if arguments:
            current.arguments += arguments
            output_index = self.output.index(current)
            kind = "response.function_call_arguments.delta"
            events.append(self.event(kind, item_id=current.id, output_index=output_index, delta=arguments))
        return events

    def close_message(self, incomplete: bool) -> list[dict[str, Any]]:
        if self.message is None:
            return []
        part = self.message.content[0]
        part.annotations = url_citations(part.text, self.sources)
        self.message.status = "incomplete" if incomplete else "completed"
        events = [
            self._text_event("response.output_text.done", text=part.text),
            self._part_event("response.content_part.done", part.model_dump(mode="json")),
            self.done(self.message),
        ]
        self.message = None
        return events

    def close_calls(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for call in self.calls.values():
            call.status = "completed"
            index = self.output.index(call)
            kind = "response.function_call_arguments.done"
            events.append(
                self.event(kind, item_id=call.id, output_index=index, name=call.name, arguments=call.arguments)
            )
            events.append(self.done(call))
        self.calls = {}
        return events

    def close(self, incomplete: bool) -> list[dict[str, Any]]:
        """Every item still being written, done."""
        return [*self.close_message(incomplete), *self.close_calls()]

    async def completed(self, finish_reason: str | None, usage: ResponseUsage | None) -> list[dict[str, Any]]:
        """The last events: the open items done, the final response handed to ``finish``, then completed or
        incomplete with it."""
        status, incomplete = status_of(finish_reason)
        events = self.close(incomplete is not None)
        final = self.response.model_copy(
            update={"status": status, "incomplete_details": incomplete, "output": self.output, "usage": usage}
        )
        await self.finish(final)
        self.final = final
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self.event(kind, response=final.model_dump(mode="json"))]

    def _part_event(self, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        assert self.message is not None
        index = self.output.index(self.message)
        return self.event(kind, item_id=self.message.id, output_index=index, content_index=0, part=part)

    def _text_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        assert self.message is not None
        index = self.output.index(self.message)
        return self.event(kind, item_id=self.message.id, output_index=index, content_index=0, logprobs=[], **fields)


class EventWriter(ItemEvents):
    """Chat chunks → the Responses API's events: the built-ins' own items (whole, from the first chunk), the
    message as its text streams, function calls as their arguments stream."""

    def __init__(self, response: ResponseObject, plan: Plan, finish: Callable[[ResponseObject], Awaitable[None]]):
        super().__init__(response, finish)
        self.plan = plan

    async def events(self, chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
        for event in self.started():
            yield event
        usage: Usage | None = None
        finish_reason: str | None = None
        first = True
        async for chunk in chunks:
            if first:
                first = False
                self.sources = [r.model_dump() for r in chunk.web_search or []]
                for item in search_items(chunk, self.plan):
                    for event in self.whole_item(item):
                        yield event
            usage = chunk.usage or usage
            for choice in chunk.choices:
                for event in self.text(choice.delta.content):
                    yield event
                for call in choice.delta.tool_calls or []:
                    for event in self.function_call(call.index, call.id, call.function.name, call.function.arguments):
                        yield event
                finish_reason = choice.finish_reason or finish_reason
        for event in await self.completed(finish_reason, usage_of(usage)):
            yield event
