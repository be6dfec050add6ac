"""ChatService: the one place a chat request becomes tokens and back."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..engines.base import GenerationHandle, GenerationRequest, SamplingParams
from ..errors import InvalidFieldError, UnsupportedError
from ..protocol.chat import MAX_LOGIT_BIASES, MAX_STOPS, ChatCompletionRequest, SamplingFields
from ..tuning.finetuned import AdapterTarget
from .choice import ChoiceDecoder, ChoiceEvent
from .grammar_compile import GrammarCompiler
from .messages import adapt_for_template, chat_messages, image_bytes, normalize_messages
from .models import ModelPool, ServedModel
from .roleplay import with_character
from .toolcalls.base import ToolCallParser, ToolCallStream
from .usage import UsageBound, generation_bound, new_usage_id

DEFAULT_TEMPERATURE = 0.95  # GLM-4's defaults on the Zhipu platform
DEFAULT_TOP_P = 0.7


@dataclass
class ChatPlan:
    """Everything decided before the first token: prompt, grammar, sampling, ids."""

    id: str
    request_id: str
    created: int
    model: str
    served: ServedModel
    generations: list[GenerationRequest]
    parser: ToolCallParser | None
    stops: list[str]
    include_usage: bool

    def decoder(self, index: int) -> ChoiceDecoder:
        stream = ToolCallStream(self.parser) if self.parser is not None else None
        return ChoiceDecoder(index, self.stops, stream)

    def usage_bound(self) -> UsageBound:
        """The most this plan can be billed for: its prompt once, and every choice's answer."""
        if not self.generations:
            return UsageBound()
        first = self.generations[0]
        context = self.served.spec.context_length
        return generation_bound(first.prompt, first.max_tokens, context, copies=len(self.generations))


@dataclass
class ChatRun:
    plan: ChatPlan
    handles: list[GenerationHandle]

    @property
    def prompt_tokens(self) -> int:
        return self.handles[0].prompt_tokens if self.handles else 0

    def cancel(self) -> None:
        """Stop every choice (harmless once they have finished)."""
        for handle in self.handles:
            handle.cancel()


def sampling_from(
    request: SamplingFields, index: int, *, greedy: bool = False, logprobs: bool = False, top_logprobs: int = 0
) -> SamplingParams:
    """Sampling for choice ``index`` (seeds differ per choice so that n > 1 gives n different samples)."""
    temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
    return SamplingParams(
        temperature=0.0 if greedy else temperature,
        top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
        top_k=request.top_k or 0,
        min_p=request.min_p or 0.0,
        seed=None if request.seed is None else request.seed + index,
        repetition_penalty=request.repetition_penalty or 1.0,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        logit_bias=logit_biases(request.logit_bias),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


MAX_TOKEN_ID = 2**31 - 1  # llama.cpp token ids are int32


def logit_biases(biases: dict[str, float] | None) -> dict[int, float]:
    """``{"token id": bias}`` checked: ids are int32 token ids, biases -100..100 (OpenAI's range), at most 1024."""
    if not biases:
        return {}
    if len(biases) > MAX_LOGIT_BIASES:
        raise InvalidFieldError(f"logit_bias: at most {MAX_LOGIT_BIASES} tokens")
    try:
        parsed = {int(k): float(v) for k, v in biases.items()}
    except ValueError:
        raise InvalidFieldError("logit_bias keys must be token ids") from None
    if any(not 0 <= token <= MAX_TOKEN_ID for token in parsed):
        raise InvalidFieldError("logit_bias keys must be token ids (0 to 2^31-1)")
    if any(not -100.0 <= bias <= 100.0 for bias in parsed.values()):
        raise InvalidFieldError("logit_bias values must be between -100 and 100")
    return parsed


def stop_list(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOPS:
        raise InvalidFieldError(f"stop: at most {MAX_STOPS} stop strings")
    return [s for s in stops if s]


class ChatService:
    def __init__(self, models: ModelPool, default_max_tokens: int = 1024, grammars: GrammarCompiler | None = None):
        self.models = models
        self.default_max_tokens = default_max_tokens
        self.grammars = grammars or GrammarCompiler()

    async def start(self, request: ChatCompletionRequest) -> ChatRun:
        """Plan and submit; every request error surfaces here, before any output."""
        return await self.submit(await self.plan(request))

    async def submit(self, plan: ChatPlan) -> ChatRun:
        """Hand a plan's generations to its engine (all of them, or none)."""
        handles: list[GenerationHandle] = []
        try:
            for generation in plan.generations:
                handles.append(await plan.served.engine.submit(generation))
        except BaseException:
            for handle in handles:
                handle.cancel()
            raise
        return ChatRun(plan, handles)

    async def plan(self, request: ChatCompletionRequest, adapter: AdapterTarget | None = None) -> ChatPlan:
        """``adapter``: the request names a fine-tuned model (resolved for the caller's account)."""
        served = self.models.get(request.model) if adapter is None else await self.models.for_fine_tuned(adapter)
        images = served.spec.vision and has_image_parts(request)
        # An engine that reads the images itself finds each where this marker stands (new per request: unforgeable).
        marker = f"<image-{secrets.token_hex(8)}>" if images and served.engine.takes_images else ""
        messages = normalize_messages(request.messages, sees=images, image_marker=marker)
        if request.meta is not None:
            if images:
                raise UnsupportedError("meta: role-play personas are not combined with images here")
            messages = with_character(messages, request.meta)
        tools = [
            t.model_dump(exclude_none=True)
            for t in request.tools or []
            if (t.type == "function" and t.function) or t.type in served.template.builtin_tools
        ]
        choice = request.tool_choice or "auto"
        if choice != "auto" and choice != "none" and not tools:
            raise InvalidFieldError("tool_choice requires tools")
        active_tools = tools if choice != "none" else []
        if images and not marker and (active_tools or request.response_format is not None):
            raise UnsupportedError(
                "a request with images is answered in text here: tools and response_format are not combined with it"
            )
        parser = served.parser(active_tools)
        prompt = served.template.render(
            adapt_for_template(messages, served.template, parser, active_tools), active_tools or None
        )
        grammar, triggers = await self.grammars.for_chat(  # off the event loop, bounded in time and memory
            parser,
            active_tools,
            required=choice == "required",
            forced=None if isinstance(choice, str) else choice.function.name,
            parallel=request.parallel_tool_calls is not False,
            response_format=request.response_format,
        )
        max_tokens = request.max_completion_tokens or request.max_tokens or self.default_max_tokens
        stops = stop_list(request.stop)
        pictures = image_bytes(request.messages) if marker else ()
        generations = [
            GenerationRequest(
                prompt=prompt,
                sampling=sampling_from(
                    request,
                    i,
                    greedy=request.do_sample is False,
                    logprobs=bool(request.logprobs),
                    top_logprobs=request.top_logprobs or 0,
                ),
                max_tokens=max_tokens,
                grammar=grammar,
                grammar_triggers=triggers,
                stop_markers=served.template.stop_markers,
                stop=tuple(stops),
                adapter=served.adapter,
                messages=chat_messages(request.messages) if images and not marker else None,
                images=pictures,
                image_marker=marker,
            )
            for i in range(request.n or 1)
        ]
        chat_id = new_usage_id("chatcmpl")
        request_id = chat_id if request.request_id is None else str(request.request_id)
        return ChatPlan(
            id=chat_id,
            request_id=request_id,
            created=int(time.time()),
            model=request.model,
            served=served,
            generations=generations,
            parser=parser if active_tools else None,
            stops=stops,
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )

    async def events(self, run: ChatRun) -> AsyncIterator[ChoiceEvent]:
        decoders = [run.plan.decoder(i) for i in range(len(run.handles))]
        async for event in merge_events(decoders, run.handles):
            yield event


async def merge_events(decoders: list[ChoiceDecoder], handles: list[GenerationHandle]) -> AsyncIterator[ChoiceEvent]:
    """Events of every choice, interleaved as they are produced."""
    if len(decoders) == 1:
        async for event in decoders[0].events(handles[0]):
            yield event
        return
    queue: asyncio.Queue[ChoiceEvent | BaseException | None] = asyncio.Queue()

    async def pump(decoder: ChoiceDecoder, handle: GenerationHandle) -> None:
        try:
            async for event in decoder.events(handle):
                await queue.put(event)
        except Exception as exc:  # surfaced to the reader below
            await queue.put(exc)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(d, h)) for d, h in zip(decoders, handles, strict=True)]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        for handle in handles:
            handle.cancel()


def has_image_parts(request: ChatCompletionRequest) -> bool:
    return any(part.type == "image_url" for m in request.messages if isinstance(m.content, list) for part in m.content)
