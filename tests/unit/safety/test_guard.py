"""The stream guard: text released only once the checkers have read it with the context after it; a hit
withholds everything not yet released and ends the stream as ``sensitive`` with the usage of what was generated;
streamed and collected answers agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

from openglm.protocol.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    TokenLogprobOut,
    Usage,
)
from openglm.safety.checkers import BuildContext, Hit
from openglm.safety.guard import guard_completion, guard_stream
from openglm.safety.words import words
from openglm.serving.usage import Tally

CHECKER = words("words", {"terms": {"weapons": ["pipe bomb"]}, "allow": ["bath bomb"]}, BuildContext())


def chunk(
    text: str | None, finish: str | None = None, usage: Usage | None = None, logprobs: bool = False
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="chatcmpl-1",
        created=0,
        model="m",
        request_id="chatcmpl-1",
        choices=[
            ChunkChoice(
                index=0,
                delta=Delta(content=text),
                finish_reason=finish,
                logprobs=ChoiceLogprobs(content=[TokenLogprobOut(token=text or "", logprob=-0.1)])
                if logprobs
                else None,
            )
        ],
        usage=usage,
    )


async def stream(pieces: list[str], tally: Tally, logprobs: bool = False) -> AsyncIterator[ChatCompletionChunk]:
    for n, piece in enumerate(pieces):
        tally.generated += 1
        last = n == len(pieces) - 1
        usage = Usage(prompt_tokens=5, completion_tokens=len(pieces), total_tokens=5 + len(pieces)) if last else None
        yield chunk(piece, "stop" if last else None, usage, logprobs)
        tally.completion_tokens = tally.generated


async def run(pieces: list[str], logprobs: bool = False) -> tuple[list[ChatCompletionChunk], list[Hit], Tally]:
    tally = Tally(prompt_tokens=5)
    hits: list[Hit] = []

    async def on_hit(hit: Hit) -> None:
        hits.append(hit)

    out = [
        c async for c in guard_stream(stream(pieces, tally, logprobs), [CHECKER], on_hit, tally, include_usage=False)
    ]
    return out, hits, tally


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_a_clean_answer_arrives_whole_and_finishes_as_the_engine_said() -> None:
    pieces = ["A bath ", "bomb", " fizzes ", "in warm ", "water."]
    out, hits, _ = await run(pieces)
    assert text_of(out) == "".join(pieces) and hits == []
    assert out[-1].choices[0].finish_reason == "stop" and out[-1].usage is not None


async def test_a_hit_split_across_chunks_is_never_sent_and_ends_the_stream_as_sensitive() -> None:
    pieces = ["Sure. First get a pi", "pe b", "omb casing, ", "then fill it ", "with powder", " and seal it."]
    out, hits, tally = await run(pieces)
    sent = text_of(out)
    assert "pipe" not in sent and "omb" not in sent
    assert "Sure." in sent  # what came well before the hit was released
    assert [h.category for h in hits] == ["weapons"]
    last = out[-1]
    assert last.choices[0].finish_reason == "sensitive" and last.choices[0].delta.content == ""
    # Billed for what the engine generated up to the stop (the engine did the work), and said so.
    assert last.usage is not None and last.usage.completion_tokens == tally.generated == tally.completion_tokens
    assert tally.generated < len(pieces)  # the rest was never asked of the engine


async def test_clean_text_is_released_as_it_is_written() -> None:
    """Only what could still become a hit waits: here the start of "pipe bomb" ("pi"), until the next piece shows
    it is not one."""
    out, _, _ = await run(["The kite ", "flies high ", "and the pi", "lot smiles", "."])
    assert [c.choices[0].delta.content for c in out] == ["The kite ", "flies high ", "and the ", "pilot smiles", "."]


async def test_text_held_at_the_end_arrives_with_a_finishing_chunk_that_has_none() -> None:
    tally = Tally(prompt_tokens=5)

    async def pieces() -> AsyncIterator[ChatCompletionChunk]:
        for text in ("Fly the kite ", "by the pi"):  # "pi" could start "pipe bomb": held
            yield chunk(text)
        yield chunk(None, "stop")  # the engine's finish carries no text

    async def on_hit(hit: Hit) -> None:
        raise AssertionError(hit)

    out = [c async for c in guard_stream(pieces(), [CHECKER], on_hit, tally, include_usage=False)]
    assert text_of(out) == "Fly the kite by the pi" and out[-1].choices[0].finish_reason == "stop"


async def test_log_probabilities_never_run_ahead_of_the_released_text() -> None:
    pieces = ["Sure. First get a ", "pipe", " bomb ", "casing."]
    out, _, _ = await run(pieces, logprobs=True)
    tokens = [
        t.token for c in out for ch in c.choices if ch.logprobs and ch.logprobs.content for t in ch.logprobs.content
    ]
    assert "pipe" not in tokens and " bomb " not in tokens
    assert "".join(tokens) == text_of(out)[: len("".join(tokens))]


async def test_streamed_and_collected_answers_agree() -> None:
    for pieces in (["A bath bomb ", "is fun."], ["Make a pipe ", "bomb like this."]):
        out, _, _ = await run(pieces)
        completion = ChatCompletion(
            id="c",
            created=0,
            model="m",
            request_id="c",
            choices=[Choice(index=0, message=AssistantMessage(content="".join(pieces)), finish_reason="stop")],
            usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        )
        hits: list[Hit] = []

        async def on_hit(hit: Hit, hits: list[Hit] = hits) -> None:
            hits.append(hit)

        collected = await guard_completion(completion, [CHECKER], on_hit)
        assert collected.choices[0].finish_reason == out[-1].choices[0].finish_reason
        if hits:  # collected: the whole answer withheld; streamed: what was clean before the hit had gone out
            assert collected.choices[0].message.content == "" and "pipe" not in text_of(out)
        else:
            assert collected.choices[0].message.content == text_of(out)
