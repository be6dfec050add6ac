"""Choice events → OpenAI/Zhipu response objects, whole (JSON) or as chunks (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..engines.base import TokenLogprob
from ..protocol.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCallOut,
    TokenLogprobOut,
    ToolCallOut,
    TopLogprobOut,
    Usage,
)
from .choice import ChoiceEvent
from .service import ChatRun, ChatService
from .toolcalls.base import ContentDelta, ToolCallDelta
from .usage import Tally


def logprobs_out(items: list[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            TokenLogprobOut(
                token=t.token,
                logprob=t.logprob,
                bytes=t.bytes,
                top_logprobs=[TopLogprobOut(token=x.token, logprob=x.logprob, bytes=x.bytes) for x in t.top],
            )
            for t in items
        ]
    )


def usage(run: ChatRun, completion_tokens: int) -> Usage:
    prompt = run.prompt_tokens
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, total_tokens=prompt + completion_tokens)


@dataclass
class _ChoiceState:
    content: list[str] = field(default_factory=list)
    calls: list[ToolCallOut] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str = "stop"


async def collect_chat(service: ChatService, run: ChatRun, tally: Tally | None = None) -> ChatCompletion:
    states = [_ChoiceState() for _ in run.handles]
    completion_tokens = 0
    async for event in service.events(run):
        state = states[event.index]
        completion_tokens += event.n_tokens
        if tally is not None:
            tally.generated = completion_tokens
        state.logprobs.extend(event.logprobs)
        for delta in event.deltas:
            if isinstance(delta, ContentDelta):
                state.content.append(delta.text)
            elif delta.id is not None:
                state.calls.append(
                    ToolCallOut(
                        id=delta.id,
                        index=delta.index,
                        function=FunctionCallOut(name=delta.name or "", arguments=delta.arguments),
                    )
                )
            else:
                state.calls[delta.index].function.arguments += delta.arguments
        if event.finish_reason:
            state.finish_reason = event.finish_reason
    if tally is not None:
        tally.completion_tokens = completion_tokens
    plan = run.plan
    choices = [
        Choice(
            index=i,
            message=AssistantMessage(
                content="".join(s.content) if s.content or not s.calls else None, tool_calls=s.calls or None
            ),
            finish_reason=s.finish_reason,
            logprobs=logprobs_out(s.logprobs) if s.logprobs else None,
        )
        for i, s in enumerate(states)
    ]
    return ChatCompletion(
        id=plan.id,
        created=plan.created,
        model=plan.model,
        request_id=plan.request_id,
        choices=choices,
        usage=usage(run, completion_tokens),
    )


def _delta(event: ChoiceEvent, first: bool) -> Delta:
    content = "".join(d.text for d in event.deltas if isinstance(d, ContentDelta))
    calls = [
        DeltaToolCall(
            index=d.index,
            id=d.id,
            type="function" if d.id else None,
            function=DeltaFunction(name=d.name, arguments=d.arguments),
        )
        for d in event.deltas
        if isinstance(d, ToolCallDelta)
    ]
    return Delta(
        role="assistant" if first else None,
        content=content or ("" if first and not calls else None),
        tool_calls=calls or None,
    )


async def stream_chat(
    service: ChatService, run: ChatRun, tally: Tally | None = None
) -> AsyncIterator[ChatCompletionChunk]:
    """Chunks as choices produce them; ``tally`` counts the tokens of chunks the client has taken."""
    tally = tally if tally is not None else Tally()
    plan = run.plan
    started: set[int] = set()
    remaining = len(run.handles)
    completion_tokens = 0

    def chunk(choices: list[ChunkChoice], usage_: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=plan.id,
            created=plan.created,
            model=plan.model,
            request_id=plan.request_id,
            choices=choices,
            usage=usage_,
        )

    async for event in service.events(run):
        completion_tokens += event.n_tokens
        tally.generated = completion_tokens
        first = event.index not in started
        if not (event.deltas or event.logprobs or event.finish_reason or first):
            continue
        started.add(event.index)
        choice = ChunkChoice(
            index=event.index,
            delta=_delta(event, first),
            finish_reason=event.finish_reason,
            logprobs=logprobs_out(event.logprobs) if event.logprobs else None,
        )
        remaining -= 1 if event.finish_reason else 0
        # Zhipu clients read usage from the chunk that finishes the last choice.
        yield chunk([choice], usage(run, completion_tokens) if remaining == 0 else None)
        tally.completion_tokens = completion_tokens  # resumed: the consumer has taken the chunk
    tally.completion_tokens = completion_tokens
    if plan.include_usage:  # OpenAI's stream_options: a final chunk with no choices
        yield chunk([], usage(run, completion_tokens))
