"""The All Tools loop: ask the model, run the tools it calls, feed the results back, until it answers.

It sits above the chat service (each round is an ordinary planned chat request) and yields ``AgentEvent``s,
which ``agent/stream.py`` writes in the glm-4-alltools wire format.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import AgentSpec
from ..errors import InvalidFieldError
from ..protocol.chat import (
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FunctionDefinition,
    ToolCall,
    ToolCallFunction,
    ToolDefinition,
)
from ..serving.choice import ChoiceEvent
from ..serving.models import ServedModel
from ..serving.service import ChatRun, ChatService, has_image_parts
from ..serving.toolcalls.base import ContentDelta, ToolCallDelta
from ..serving.usage import Tally, UsageBound
from ..tuning.finetuned import AdapterTarget
from ..untrusted.loaders import load_json
from .partial import partial_string
from .replay import needs_replay, with_replayed_calls
from .tools.base import AgentTool, Billing, ToolContext
from .tools.vision import VisionTool


@dataclass
class Text:
    text: str


@dataclass
class ToolInput:
    call_id: str
    tool_type: str
    fragment: str


@dataclass
class FunctionCall:
    index: int
    call_id: str | None
    name: str | None
    arguments: str


@dataclass
class ToolCallsEnd:
    pass


@dataclass
class ToolOutputs:
    tool_type: str
    outputs: list[dict[str, Any]]


@dataclass
class Finished:
    finish_reason: str
    status: str  # completed | requires_action | failed


AgentEvent = Text | ToolInput | FunctionCall | ToolCallsEnd | ToolOutputs | Finished
# Called with the most a further round can be billed for, before it is submitted: metering reserves that much of
# the caller's balance, or raises (1113) and the run ends there.
RoundReservation = Callable[[UsageBound], Awaitable[None]]


@dataclass
class _Call:
    call_id: str
    name: str
    arguments: str = ""
    streamed: str = ""  # the part of the input argument already sent


@dataclass
class AgentRun:
    """One request's loop: its tools, its conversation, its history so far."""

    spec: AgentSpec
    request: ChatCompletionRequest
    builtins: dict[str, tuple[AgentTool, ToolContext]]  # by function name
    functions: list[ToolDefinition]
    conversation: str
    messages: list[ChatMessage] = field(default_factory=list)
    finish_reason: str = "stop"  # of the latest round: "length" when it ran out of tokens
    # The agent's model is a fine-tuned one (``spec.model`` its id): every round runs on its base with this adapter.
    adapter: AdapterTarget | None = None
    # The adapter is the catalog's agent adapter with ``agent_plain_replies = "base"``: it decides whether a turn
    # needs a tool, and a plain reply to the user is written on the base weights.
    plain_replies_on_base: bool = False
    # With plain replies on the base: the least probability of a call's first token for the adapter's call to go on.
    tool_confidence: float = 0.0


class AgentLoop:
    def __init__(self, chat: ChatService, tools: dict[str, AgentTool]):
        self.chat = chat
        self.tools = tools  # available built-ins, by type

    def prepare(
        self,
        spec: AgentSpec,
        request: ChatCompletionRequest,
        account_id: str,
        billing: Billing | None = None,
        server_tools: list[AgentTool] | None = None,
        base_url: str = "",
        *,
        resources_of: str | None = None,
        adapter: AdapterTarget | None = None,
    ) -> AgentRun:
        """``adapter``: ``spec.model`` is a fine-tuned model, resolved (for its owner) to its base and adapter; else
        the catalog model's own agent adapter (``agent_adapter``), if it has one and the agent is not ``base_only``."""
        plain_replies_on_base, tool_confidence = False, 0.0
        if adapter is None and not spec.base_only:
            adapter = self.chat.models.agent_adapter(spec.model)
            if adapter is not None:
                model_spec = self.chat.models.get(spec.model).spec  # (a confidence implies plain replies on base)
                plain_replies_on_base = model_spec.agent_plain_replies == "base"
                tool_confidence = model_spec.agent_tool_confidence
        conversation = request.conversation_id or "conv_" + secrets.token_hex(12)
        # Tool state (kernel, browser session, last image prompt) is the account's own: two accounts choosing the
        # same conversation id must not share a kernel.
        state_key = f"{account_id}:{conversation}"
        builtins: dict[str, tuple[AgentTool, ToolContext]] = {}
        functions = []
        for entry in request.tools or []:
            if entry.type == "function" and entry.function is not None:
                functions.append(entry)
                continue
            tool = self.tools.get(entry.type)
            if tool is None:
                known = ", ".join(sorted([*self.tools, "function"]))
                raise InvalidFieldError(f"tools: {entry.type!r} is not available here; available: {known}")
            options = getattr(entry, entry.type, None) or {}
            context = ToolContext(state_key, account_id, options, billing, base_url, resources_of)
            builtins[tool.function_name] = (tool, context)
        for tool in server_tools or []:  # the agent's own HTTP tools, always on
            builtins[tool.function_name] = (
                tool,
                ToolContext(state_key, account_id, {}, billing, base_url, resources_of),
            )
        messages = list(request.messages)
        vision = self.tools.get("vision")
        if (
            isinstance(vision, VisionTool)
            and has_image_parts(request)
            and not self.served(spec.model, adapter).engine.takes_images  # else the images stay: the model reads them
        ):
            # The agent's model reads numbered markers; the vision tool looks at the images themselves.
            messages, urls = numbered_images(messages, len(vision.attached(state_key)) + 1)
            vision.attach(state_key, urls)
            context = ToolContext(state_key, account_id, {}, billing, base_url, resources_of)
            builtins.setdefault(vision.function_name, (vision, context))
        if needs_replay(messages):
            native_code = "python" in self.served(spec.model, adapter).template.builtin_tools
            messages = with_replayed_calls(messages, native_code=native_code)
        if spec.system and not any(m.role == "system" for m in messages):
            messages.insert(0, ChatMessage(role="system", content=spec.system))
        return AgentRun(
            spec,
            request,
            builtins,
            functions,
            conversation,
            messages,
            adapter=adapter,
            plain_replies_on_base=plain_replies_on_base,
            tool_confidence=tool_confidence,
        )

    def served(self, model: str, adapter: AdapterTarget | None) -> ServedModel:
        """What the agent's rounds run on: a catalog model, or a fine-tuned one on its base."""
        return self.chat.models.get(model) if adapter is None else self.chat.models.for_adapter(adapter)

    async def run(
        self, run: AgentRun, tally: Tally, reserve: RoundReservation | None = None
    ) -> AsyncIterator[AgentEvent]:
        """``reserve``: for each round after the first (whose cost the caller reserved when it was admitted)."""
        filters = [f for tool, c in run.builtins.values() if (f := tool.text_filter(c.conversation)) is not None]
        async for event in self._run(run, tally, reserve):
            if not filters:
                yield event
            elif isinstance(event, Text):
                for text_filter in filters:
                    event = Text(text_filter.feed(event.text))
                if event.text:
                    yield event
            else:
                held = "".join(f.flush() for f in filters)
                if held:
                    yield Text(held)
                yield event

    async def _run(self, run: AgentRun, tally: Tally, reserve: RoundReservation | None) -> AsyncIterator[AgentEvent]:
        for round_number in range(run.spec.max_rounds):
            calls: list[_Call] = []
            async for event in self._round(run, tally, calls, first=round_number == 0, reserve=reserve):
                yield event
            if not calls:
                yield Finished(run.finish_reason, "completed")
                return
            if round_number == run.spec.max_rounds - 1:
                break  # no round is left to read the results: do not run (or bill) the tools
            here = [
                c
                for c in calls
                if c.name in run.builtins and run.builtins[c.name][0].runs_here(run.builtins[c.name][1])
            ]
            if len(here) < len(calls) and not any(c.name in run.builtins for c in calls if c not in here):
                # Only user functions are left for the client: answer the built-ins first, then hand over.
                if here:
                    yield ToolCallsEnd()
                async for event in self._run_tools(run, here):
                    yield event
                yield Finished("tool_calls", "requires_action")
                return
            if len(here) < len(calls):
                yield Finished("tool_calls", "requires_action")  # sandbox "none": the client runs the code
                return
            yield ToolCallsEnd()
            async for event in self._run_tools(run, calls):
                yield event
        yield Text(f"\n[Stopped after {run.spec.max_rounds} tool rounds without a final answer.]")
        yield Finished("stop", "completed")

    def round_request(self, run: AgentRun, *, first: bool) -> ChatCompletionRequest:
        """The chat request of one round: the history so far, the tools, the agent's model."""
        request = run.request.model_copy(
            update={
                "model": run.spec.model,
                "messages": run.messages,
                "tools": [self._offer(run, tool, context) for tool, context in run.builtins.values()] + run.functions,
                "n": 1,
                "stream": True,
                # Agents return no logprobs: no round computes them (the adapter's probe asks for its own).
                "logprobs": None,
                "top_logprobs": None,
                # A forced choice (required, a named tool) holds for the first round; later rounds must be free
                # to answer, or the loop could only end at its round limit.
                "tool_choice": run.request.tool_choice if first else "auto",
            }
        )
        if not request.tools:
            request.tools, request.tool_choice = None, None
        return request

    async def validate(self, run: AgentRun) -> UsageBound:
        """Plan the first round now, so that a bad request is a 400 before the stream starts; the most that
        round can be billed for."""
        return (await self.chat.plan(self.round_request(run, first=True), run.adapter)).usage_bound()

    async def _round(
        self,
        run: AgentRun,
        tally: Tally,
        calls: list[_Call],
        *,
        first: bool,
        reserve: RoundReservation | None = None,
    ) -> AsyncIterator[AgentEvent]:
        request = self.round_request(run, first=first)
        to_user = self._replies_to_user(run, request)
        # With no tool to choose there is nothing for the adapter to decide: the base answers straight away.
        undecided = request.tools is not None and request.tool_choice != "none"
        deciding = to_user and undecided
        asked = request
        if deciding and run.tool_confidence > 0:
            # The probe's first token says how sure the adapter is of a call (the base's round is asked as it was).
            asked = request.model_copy(update={"logprobs": True, "top_logprobs": None})
        plan = await self.chat.plan(asked, None if to_user and not undecided else run.adapter)
        if reserve is not None and not first:
            await reserve(plan.usage_bound())
        chat_run = await self.chat.submit(plan)
        events = self.chat.events(chat_run)
        if deciding:
            chat_run, events = await self._plain_reply_on_base(run, request, chat_run, events)
        tally.prompt_tokens += chat_run.prompt_tokens
        content: list[str] = []
        async for event in events:
            tally.completion_tokens += event.n_tokens
            tally.generated += event.n_tokens
            if event.finish_reason:
                run.finish_reason = event.finish_reason
            for delta in event.deltas:
                if isinstance(delta, ContentDelta):
                    content.append(delta.text)
                    yield Text(delta.text)
                else:
                    for out in self._call_delta(run, calls, delta):
                        yield out
        run.messages.append(_assistant_message("".join(content), calls))

    @staticmethod
    def _replies_to_user(run: AgentRun, request: ChatCompletionRequest) -> bool:
        """The round answers the user's message (no tool result to read yet), no tool is forced, and the run's
        plain replies are the base weights' to write."""
        return (
            run.plain_replies_on_base
            and bool(run.messages)
            and run.messages[-1].role == "user"
            and request.tool_choice in (None, "auto", "none")
        )

    async def _plain_reply_on_base(
        self, run: AgentRun, request: ChatCompletionRequest, probe: ChatRun, events: AsyncIterator[ChoiceEvent]
    ) -> tuple[ChatRun, AsyncIterator[ChoiceEvent]]:
        """Read the adapter's round up to its first delta: a tool call goes on as it is (if the adapter was at least
        ``run.tool_confidence`` sure of its first token); prose, an empty reply or an unsure call is stopped and the
        round asked again of the base weights (without the probe's logprobs), whose reply is the round's.
        Only that round is billed: the few probe tokens the adapter spent deciding are the platform's cost. A call
        the adapter would write after a sentence is lost with the sentence (its lessons start calls at once; reading
        the whole probe to find one would make every plain reply wait for the adapter's)."""
        held: list[ChoiceEvent] = []
        async for event in events:
            held.append(event)
            if event.deltas or event.finish_reason:
                break
        first = next((delta for event in held for delta in event.deltas), None)
        if isinstance(first, ToolCallDelta) and _first_token_probability(held) >= run.tool_confidence:
            return probe, _chained(held, events)
        probe.cancel()
        if isinstance(events, AsyncGenerator):
            await events.aclose()
        base = await self.chat.submit(await self.chat.plan(request))
        return base, self.chat.events(base)

    def _offer(self, run: AgentRun, tool: AgentTool, context: ToolContext) -> ToolDefinition:
        """The template's own section for a built-in it knows (GLM-4: python, simple_browser, cogview, with the
        official texts), else a JSON function. A forced call needs a JSON schema for its grammar."""
        forced = run.request.tool_choice not in (None, "auto", "none")
        template = self.served(run.spec.model, run.adapter).template
        if tool.function_name in template.builtin_tools and not forced:
            return ToolDefinition(type=tool.function_name)
        return ToolDefinition(type="function", function=FunctionDefinition.model_validate(tool.definition(context)))

    def _call_delta(self, run: AgentRun, calls: list[_Call], delta: ToolCallDelta) -> list[AgentEvent]:
        if delta.id is not None:
            calls.append(_Call(delta.id, delta.name or ""))
        call = calls[delta.index]
        call.arguments += delta.arguments
        builtin = run.builtins.get(call.name)
        if builtin is None:
            return [FunctionCall(delta.index, delta.id, delta.name, delta.arguments)]
        tool = builtin[0]
        if not tool.streams_input:
            return [FunctionCall(delta.index, delta.id, delta.name, delta.arguments)]
        text = tool_input(call.arguments, tool.input_argument)
        fresh, call.streamed = text[len(call.streamed) :], text
        return [ToolInput(call.call_id, tool.type, fresh)] if fresh else []

    async def _run_tools(self, run: AgentRun, calls: list[_Call]) -> AsyncIterator[AgentEvent]:
        for call in calls:
            tool, context = run.builtins[call.name]
            try:
                result = await tool.run(tool_arguments(call.arguments, tool.input_argument), context)
                outputs, observation = result.outputs, result.observation
            except Exception as exc:  # a tool's failure is something the model should read and work around
                outputs = [{"type": "logs", "logs": f"tool error: {exc}"}]
                observation = f"[the tool failed: {exc}]"
            yield ToolOutputs(tool.type, outputs)
            run.messages.append(ChatMessage(role="tool", tool_call_id=call.call_id, content=observation))


def _first_token_probability(held: list[ChoiceEvent]) -> float:
    """The probability the model gave the first token that is not whitespace — the one that opened the call (the
    parser skips whitespace before a call's marker); 1 when the probe was not asked for logprobs (engines that
    cannot report them are refused a threshold at the start)."""
    first = next((token for event in held for token in event.logprobs if token.token.strip()), None)
    return 1.0 if first is None else math.exp(first.logprob)


async def _chained(held: list[ChoiceEvent], rest: AsyncIterator[ChoiceEvent]) -> AsyncIterator[ChoiceEvent]:
    for event in held:
        yield event
    async for event in rest:
        yield event


def _assistant_message(content: str, calls: list[_Call]) -> ChatMessage:
    return ChatMessage(
        role="assistant",
        content=content or None,
        tool_calls=[
            ToolCall(id=c.call_id, function=ToolCallFunction(name=c.name, arguments=c.arguments)) for c in calls
        ]
        or None,
    )


def _is_json_object(arguments: str) -> bool:
    return arguments.lstrip().startswith("{")


def tool_input(arguments: str, key: str) -> str:
    """The text a built-in call streams as its ``input``: one JSON argument, or a raw body (GLM-4's builtins)."""
    return partial_string(arguments, key) if _is_json_object(arguments) else arguments


def tool_arguments(arguments: str, key: str) -> dict[str, Any]:
    if _is_json_object(arguments):
        parsed = load_json(arguments, what="the tool arguments")
        if not isinstance(parsed, dict):
            raise InvalidFieldError("tool arguments must be a JSON object")
        return parsed
    return {key: _strip_fence(arguments)}


def _strip_fence(body: str) -> str:
    """GLM-4 sometimes wraps python's body in a markdown fence."""
    text = body.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").rstrip()
    return text


def numbered_images(messages: list[ChatMessage], first: int) -> tuple[list[ChatMessage], list[str]]:
    """The user's image parts replaced by ``[image N]`` markers (numbered from ``first``), and their URLs."""
    urls: list[str] = []
    out = []
    for message in messages:
        if message.role != "user" or not isinstance(message.content, list):
            out.append(message)
            continue
        parts = []
        for part in message.content:
            if part.type != "image_url":
                parts.append(part)
                continue
            image = part.image_url.get("url") if isinstance(part.image_url, dict) else part.image_url
            urls.append(str(image or ""))
            marker = f"[image {first + len(urls) - 1}: attached by the user; look_at_image shows it]"
            parts.append(ContentPart(type="text", text=marker))
        out.append(message.model_copy(update={"content": parts}))
    return out, urls
