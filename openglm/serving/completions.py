"""Text completions (``/v1/completions``): raw prompts, no chat template.

This is also the surface a remote OpenGLM engine talks to, so it accepts a
GBNF ``grammar`` like llama-server and llama-cpp-python do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..engines.base import GenerationHandle, GenerationRequest, TokenLogprob
from ..errors import InvalidFieldError
from ..protocol.chat import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, Usage
from .choice import ChoiceDecoder
from .grammar_compile import GrammarCompiler
from .models import ServedModel
from .service import merge_events, sampling_from, stop_list
from .toolcalls.base import ContentDelta
from .usage import Tally, UsageBound, generation_bound, new_usage_id

# Generations one request may ask for (prompts × n): chat's bound on ``n``. Each holds an engine slot and is
# reserved for up front, so an unbounded list would let one request hold the engine (and its admission check
# would be a formality).
MAX_GENERATIONS = 16


@dataclass
class CompletionPlan:
    """Everything decided before the engine is touched: the generations, and what they can cost at most."""

    id: str
    model: str
    prompts: list[str]
    n: int
    echo: bool
    stops: list[str]
    generations: list[GenerationRequest]
    include_usage: bool
    context_length: int

    def usage_bound(self) -> UsageBound:
        """Each prompt is billed once, each of its ``n`` answers by its tokens."""
        bound = UsageBound()
        for generation in self.generations[:: self.n]:
            bound += generation_bound(generation.prompt, generation.max_tokens, self.context_length, self.n)
        return bound


@dataclass
class CompletionRun:
    id: str
    created: int
    model: str
    prompts: list[str]
    n: int
    echo: bool
    stops: list[str]
    handles: list[GenerationHandle]
    include_usage: bool

    @property
    def prompt_tokens(self) -> int:
        return sum(self.handles[i * self.n].prompt_tokens for i in range(len(self.prompts)))

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()


async def plan_completion(served: ServedModel, request: CompletionRequest, grammars: GrammarCompiler) -> CompletionPlan:
    prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
    n = request.n or 1
    if not prompts:
        raise InvalidFieldError("prompt: give a prompt, or a list of at least one")
    if len(prompts) * n > MAX_GENERATIONS:
        raise InvalidFieldError(
            f"prompt, n: {len(prompts)} prompts × n={n} asks for {len(prompts) * n} completions; "
            f"at most {MAX_GENERATIONS} per request"
        )
    grammar = await grammars.for_completion(request.grammar, request.response_format)
    stops = stop_list(request.stop)
    generations = [
        GenerationRequest(
            prompt,
            # OpenAI's completions "logprobs": N asks for the chosen token plus the N most likely.
            sampling_from(request, i, logprobs=request.logprobs is not None, top_logprobs=request.logprobs or 0),
            request.max_tokens,
            grammar,
            stop=tuple(stops),
            adapter=served.adapter,
        )
        for prompt in prompts
        for i in range(n)
    ]
    return CompletionPlan(
        id=new_usage_id("cmpl"),
        model=request.model,
        prompts=prompts,
        n=n,
        echo=bool(request.echo),
        stops=stops,
        generations=generations,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        context_length=served.spec.context_length,
    )


async def start_completion(served: ServedModel, plan: CompletionPlan) -> CompletionRun:
    """Submit every generation of the plan, or none."""
    handles: list[GenerationHandle] = []
    try:
        for generation in plan.generations:
            handles.append(await served.engine.submit(generation))
    except BaseException:
        for handle in handles:
            handle.cancel()
        raise
    return CompletionRun(
        id=plan.id,
        created=int(time.time()),
        model=plan.model,
        prompts=plan.prompts,
        n=plan.n,
        echo=plan.echo,
        stops=plan.stops,
        handles=handles,
        include_usage=plan.include_usage,
    )


def _logprobs(items: list[TokenLogprob]) -> CompletionLogprobs:
    return CompletionLogprobs(
        tokens=[t.token for t in items],
        token_logprobs=[t.logprob for t in items],
        top_logprobs=[{x.token: x.logprob for x in t.top} for t in items],
    )


def _usage(run: CompletionRun, completion_tokens: int) -> Usage:
    prompt = run.prompt_tokens
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, total_tokens=prompt + completion_tokens)


async def completion_chunks(run: CompletionRun, tally: Tally | None = None) -> AsyncIterator[Completion]:
    tally = tally if tally is not None else Tally()
    decoders = [ChoiceDecoder(i, run.stops, None) for i in range(len(run.handles))]
    completion_tokens = 0
    echoed: set[int] = set()
    async for event in merge_events(decoders, run.handles):
        completion_tokens += event.n_tokens
        tally.generated = completion_tokens
        text = "".join(d.text for d in event.deltas if isinstance(d, ContentDelta))
        if run.echo and event.index not in echoed:
            echoed.add(event.index)
            text = run.prompts[event.index // run.n] + text
        if not (text or event.finish_reason or event.logprobs):
            continue
        choice = CompletionChoice(
            index=event.index,
            text=text,
            finish_reason=event.finish_reason,
            logprobs=_logprobs(event.logprobs) if event.logprobs else None,
        )
        yield Completion(id=run.id, created=run.created, model=run.model, choices=[choice])
        tally.completion_tokens = completion_tokens  # resumed: the consumer has taken the chunk
    tally.completion_tokens = completion_tokens
    if run.include_usage:
        yield Completion(
            id=run.id, created=run.created, model=run.model, choices=[], usage=_usage(run, completion_tokens)
        )


async def collect_completion(run: CompletionRun, tally: Tally | None = None) -> Completion:
    texts = [""] * len(run.handles)
    finish = ["stop"] * len(run.handles)
    logprobs: list[list[TokenLogprob]] = [[] for _ in run.handles]
    decoders = [ChoiceDecoder(i, run.stops, None) for i in range(len(run.handles))]
    completion_tokens = 0
    async for event in merge_events(decoders, run.handles):
        completion_tokens += event.n_tokens
        if tally is not None:
            tally.generated = completion_tokens
        texts[event.index] += "".join(d.text for d in event.deltas if isinstance(d, ContentDelta))
        logprobs[event.index].extend(event.logprobs)
        if event.finish_reason:
            finish[event.index] = event.finish_reason
    if tally is not None:
        tally.completion_tokens = completion_tokens
    choices = [
        CompletionChoice(
            index=i,
            text=(run.prompts[i // run.n] if run.echo else "") + texts[i],
            finish_reason=finish[i],
            logprobs=_logprobs(logprobs[i]) if logprobs[i] else None,
        )
        for i in range(len(run.handles))
    ]
    return Completion(
        id=run.id, created=run.created, model=run.model, choices=choices, usage=_usage(run, completion_tokens)
    )
