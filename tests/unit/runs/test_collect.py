"""An agent's glm-4-alltools stream folded into one answer (async results): its text across rounds, each built-in
call with its whole input and its outputs, user functions whole, and the last chunk's usage and status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from openglm.protocol.alltools import AllToolsChoice, AllToolsChunk, AllToolsDelta
from openglm.protocol.chat import Usage
from openglm.runs.collect import collect
from openglm.runs.outcome import Streamed


def chunk(finish: str | None = None, **delta: Any) -> AllToolsChunk:
    return AllToolsChunk(
        id="chatcmpl-1",
        created=1,
        model="glm-4-alltools",
        choices=[AllToolsChoice(delta=AllToolsDelta(**delta), finish_reason=finish)],
    )


async def stream(chunks: list[AllToolsChunk]) -> AsyncIterator[AllToolsChunk]:
    for item in chunks:
        yield item


async def test_the_fold_keeps_text_calls_outputs_and_usage() -> None:
    last = chunk("stop")
    last.usage = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    last.status = "completed"
    chunks = [
        chunk(content="Let me compute. "),
        chunk(tool_calls=[{"id": "call_1", "type": "code_interpreter", "code_interpreter": {"input": "print("}}]),
        chunk(tool_calls=[{"id": "call_1", "type": "code_interpreter", "code_interpreter": {"input": "6*7)"}}]),
        chunk("tool_calls", tool_calls=None),
        chunk(
            role="tool",
            tool_calls=[
                {"type": "code_interpreter", "code_interpreter": {"outputs": [{"type": "logs", "logs": "42"}]}}
            ],
        ),
        chunk(content="It is 42."),
        last,
    ]
    closed: list[bool] = []
    answer = await collect(Streamed(stream(chunks), lambda: closed.append(True)))
    assert closed == [True]
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "Let me compute. It is 42." and choice["finish_reason"] == "stop"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "code_interpreter",
            "code_interpreter": {"input": "print(6*7)", "outputs": [{"type": "logs", "logs": "42"}]},
        }
    ]
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert answer["status"] == "completed" and answer["id"] == "chatcmpl-1"


async def test_user_functions_are_taken_whole_from_the_chunk_that_ends_them() -> None:
    partial = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    whole = {**partial, "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'}}
    answer = await collect(
        Streamed(stream([chunk(tool_calls=[partial]), chunk("tool_calls", tool_calls=[whole])]), lambda: None)
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "call_9", "type": "function", "function": whole["function"]}]
