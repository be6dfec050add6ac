"""Output checked while it streams. Each choice's text passes a ``TextGuard``: what is written is released as soon
as no checker could still find a hit in it (``Checker.holdback``: usually nothing, or the start of a word that
could become a listed term), the rest held; a hit withholds everything not yet released, and the stream ends
there with ``finish_reason: "sensitive"`` (what the client already has is what it saw; nothing after). A tool
call's arguments arrive whole and are checked whole.

The per-token cost is two searches over what is held plus the checkers' ``before`` context: small and fixed,
however long the answer.

A checker that reads whole texts only (an LLM judge: ``whole``) reads each choice's answer when it finishes, before
its last chunk goes out: on a hit that chunk is withheld and the choice ends ``sensitive``. What streamed before it
was already sent — Zhipu's API defines ``sensitive`` as the client's signal to withdraw it — and the hit is
recorded like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from ..protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    Delta,
    TokenLogprobOut,
    Usage,
)
from ..serving.usage import Tally
from .checkers import Checker, Hit, check_all

SENSITIVE = "sensitive"
OnHit = Callable[[Hit], Awaitable[None]]
# Around a ``whole`` checker's read of a streamed answer: who pays for a judge's model call (``runs/moderation.py``).
Within = Callable[[], AbstractContextManager[None]]


@dataclass
class TextGuard:
    checkers: Sequence[Checker]
    before: int = 0
    pending: str = ""  # written, not yet released
    released_tail: str = ""  # the end of what was released: the context a hit at the start of ``pending`` needs
    pending_logprobs: list[TokenLogprobOut] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.before = max([0, *(c.before for c in self.checkers)])

    async def feed(self, text: str, final: bool) -> tuple[str, Hit | None]:
        """``text`` written; what may be released now, or the first hit (everything pending is then withheld)."""
        self.pending += text
        if not self.pending:
            return "", None
        view = self.released_tail + self.pending
        for checker in self.checkers:
            hits = await checker.check(view, partial=not final)
            if hits:
                self.pending = ""
                self.pending_logprobs.clear()
                return "", hits[0]
        held = 0 if final else min(len(self.pending), max((c.holdback(view) for c in self.checkers), default=0))
        cut = len(self.pending) - held
        released, self.pending = self.pending[:cut], self.pending[cut:]
        self.released_tail = (self.released_tail + released)[-self.before :] if self.before else ""
        return released, None

    def release_logprobs(self, released: str, final: bool) -> list[TokenLogprobOut] | None:
        """The log-probabilities of the tokens now released: a token's entry goes out with (or after) its text,
        never before it, so withheld text cannot be read off them."""
        if final:
            out, self.pending_logprobs = self.pending_logprobs, []
            return out or None
        budget = len(released)
        out = []
        while self.pending_logprobs and len(self.pending_logprobs[0].token) <= budget:
            budget -= len(self.pending_logprobs[0].token)
            out.append(self.pending_logprobs.pop(0))
        # What did not fit is owed against the text released next.
        return out or None


async def guard_stream(
    chunks: AsyncIterator[ChatCompletionChunk],
    checkers: Sequence[Checker],
    on_hit: OnHit,
    tally: Tally,
    include_usage: bool,
    whole: Sequence[Checker] = (),
    within: Within = nullcontext,
) -> AsyncIterator[ChatCompletionChunk]:
    """``chunks`` (one choice each, as ``serving.responses.stream_chat`` writes them) with every choice's text
    held and released by its guard, and read whole by ``whole`` as it finishes. On a hit: one chunk finishing every
    unfinished choice as ``sensitive``, with the usage of what the engine generated (billed: the engine did the
    work), and no more."""
    guards: dict[int, TextGuard] = {}
    answers: dict[int, list[str]] = {}  # each choice's released text and tool-call arguments, for ``whole``
    finished: set[int] = set()
    async for chunk in chunks:
        kept = []
        for choice in chunk.choices:
            guard = guards.setdefault(choice.index, TextGuard(checkers))
            hit = await _guard_choice(guard, choice)
            if hit is None and whole:
                with within():
                    hit = await _judge_choice(answers.setdefault(choice.index, []), choice, whole)
            if hit is not None:
                await on_hit(hit)
                yield _stopped(chunk, guards, finished, tally)
                if include_usage:
                    yield chunk.model_copy(update={"choices": [], "usage": _usage(tally)})
                return
            if choice.finish_reason is not None:
                finished.add(choice.index)
            if _carries_anything(choice):
                kept.append(choice)
        if kept or chunk.usage is not None or chunk.retrieval:
            yield chunk.model_copy(update={"choices": kept})


async def _guard_choice(guard: TextGuard, choice: ChunkChoice) -> Hit | None:
    final = choice.finish_reason is not None
    written = choice.delta.content
    if choice.logprobs is not None and choice.logprobs.content:
        guard.pending_logprobs.extend(choice.logprobs.content)
        choice.logprobs.content = None
    released, hit = await guard.feed(written or "", final)
    if hit is not None:
        return hit
    for call in choice.delta.tool_calls or []:
        hits = await check_all(guard.checkers, call.function.arguments or "")
        if hits:
            return hits[0]
    if written is not None or released:  # a finishing chunk with no text of its own still brings the held text
        choice.delta.content = released
    if choice.logprobs is not None:
        choice.logprobs.content = guard.release_logprobs(released, final)
    return None


async def _judge_choice(answer: list[str], choice: ChunkChoice, whole: Sequence[Checker]) -> Hit | None:
    """Keep what ``choice`` released; when it finishes, the whole answer's first hit, if any."""
    answer.append(choice.delta.content or "")
    answer += [call.function.arguments or "" for call in choice.delta.tool_calls or []]
    if choice.finish_reason is None:
        return None
    hits = await check_all(whole, "".join(answer))
    return hits[0] if hits else None


def _carries_anything(choice: ChunkChoice) -> bool:
    delta = choice.delta
    return bool(
        delta.content
        or delta.role
        or delta.tool_calls
        or choice.finish_reason
        or (choice.logprobs is not None and choice.logprobs.content)
    )


def _stopped(
    chunk: ChatCompletionChunk, guards: dict[int, TextGuard], finished: set[int], tally: Tally
) -> ChatCompletionChunk:
    tally.completion_tokens = tally.generated
    choices = [
        ChunkChoice(index=index, delta=Delta(content=""), finish_reason=SENSITIVE)
        for index in sorted(guards)
        if index not in finished
    ]
    return chunk.model_copy(update={"choices": choices, "usage": _usage(tally), "retrieval": None})


def _usage(tally: Tally) -> Usage:
    return Usage(
        prompt_tokens=tally.prompt_tokens,
        completion_tokens=tally.completion_tokens,
        total_tokens=tally.prompt_tokens + tally.completion_tokens,
    )


async def guard_completion(completion: ChatCompletion, checkers: Sequence[Checker], on_hit: OnHit) -> ChatCompletion:
    """A whole answer: a choice whose text or tool calls hit is withheld (no content, no tool calls) and finishes
    as ``sensitive``; the usage stays what the engine generated."""
    for choice in completion.choices:
        texts = [choice.message.content or ""]
        texts += [call.function.arguments for call in choice.message.tool_calls or []]
        for text in texts:
            hits = await check_all(checkers, text)
            if hits:
                await on_hit(hits[0])
                choice.message.content = ""
                choice.message.tool_calls = None
                choice.finish_reason = SENSITIVE
                choice.logprobs = None
                break
    return completion


async def guard_text_stream(
    chunks: AsyncIterator[Completion],
    checkers: Sequence[Checker],
    on_hit: OnHit,
    tally: Tally,
    whole: Sequence[Checker] = (),
    within: Within = nullcontext,
) -> AsyncIterator[Completion]:
    """Legacy text completions, as ``guard_stream`` does chat (``whole`` too). Their log-probabilities (parallel
    lists, not per-token entries) are held until their choice finishes cleanly."""
    guards: dict[int, TextGuard] = {}
    held: dict[int, list[CompletionLogprobs]] = {}
    answers: dict[int, list[str]] = {}
    finished: set[int] = set()
    async for chunk in chunks:
        kept = []
        for choice in chunk.choices:
            guard = guards.setdefault(choice.index, TextGuard(checkers))
            final = choice.finish_reason is not None
            released, hit = await guard.feed(choice.text, final)
            if whole:  # only a whole-text checker needs the answer kept
                answer = answers.setdefault(choice.index, [])
                answer.append(released)
                if hit is None and final:
                    with within():
                        hit = next(iter(await check_all(whole, "".join(answer))), None)
            if hit is not None:
                await on_hit(hit)
                tally.completion_tokens = tally.generated
                stopped = [
                    CompletionChoice(index=i, text="", finish_reason=SENSITIVE)
                    for i in sorted(guards)
                    if i not in finished
                ]
                yield chunk.model_copy(update={"choices": stopped, "usage": _usage(tally)})
                return
            if choice.logprobs is not None:
                held.setdefault(choice.index, []).append(choice.logprobs)
            logprobs = _joined(held.pop(choice.index, [])) if final else None
            if final:
                finished.add(choice.index)
            if released or final or logprobs is not None:
                kept.append(choice.model_copy(update={"text": released, "logprobs": logprobs}))
        if kept or chunk.usage is not None:
            yield chunk.model_copy(update={"choices": kept})


def _joined(parts: list[CompletionLogprobs]) -> CompletionLogprobs | None:
    if not parts:
        return None
    return CompletionLogprobs(
        tokens=[t for p in parts for t in p.tokens],
        token_logprobs=[t for p in parts for t in p.token_logprobs],
        top_logprobs=[t for p in parts for t in p.top_logprobs],
        text_offset=[t for p in parts for t in p.text_offset],
    )


async def guard_text(completion: Completion, checkers: Sequence[Checker], on_hit: OnHit) -> Completion:
    """A whole legacy completion: a choice whose text hits is withheld and finishes as ``sensitive``."""
    for choice in completion.choices:
        hits = await check_all(checkers, choice.text)
        if hits:
            await on_hit(hits[0])
            choice.text, choice.finish_reason, choice.logprobs = "", SENSITIVE, None
    return completion
