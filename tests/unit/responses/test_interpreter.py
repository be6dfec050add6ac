"""``AgentEventWriter``: an agent run's events as the Responses events, read back by the openai SDK's own stream
accumulator (the one ``responses.stream`` uses) — including the paths a scripted server run does not take: text
before and after code, several rounds, code the run never ran, files that are not images."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from openglm.agent.loop import AgentEvent, Finished, Text, ToolCallsEnd, ToolInput, ToolOutputs
from openglm.protocol.responses import CodeImage, CodeLogs, ResponseObject
from openglm.responses.interpreter import AgentEventWriter, interpreter_outputs
from openglm.serving.usage import Tally

FILES = "http://server/v1/files"
RUN: list[AgentEvent] = [
    Text("Let me compute."),
    ToolInput("call_1", "code_interpreter", "print("),
    ToolInput("call_1", "code_interpreter", "1)"),
    ToolCallsEnd(),
    ToolOutputs(
        "code_interpreter",
        [
            {"type": "logs", "logs": "1\n"},
            {"type": "file", "file": f"{FILES}/file-a/content", "name": "image-0.png"},
            {"type": "file", "file": f"{FILES}/file-b/content", "name": "table.csv"},
        ],
    ),
    Text("Once more."),
    ToolInput("call_2", "code_interpreter", "print(2)"),  # the round limit: never run
    Text("[Stopped after 2 tool rounds without a final answer.]"),
    Finished("stop", "completed"),
]


async def written(events: list[AgentEvent]) -> tuple[list[dict[str, Any]], AgentEventWriter]:
    response = ResponseObject(id="resp_1", created_at=1, status="in_progress", model="m", output=[])

    async def finish(final: ResponseObject) -> None:
        pass

    async def agent_events() -> AsyncIterator[AgentEvent]:
        for event in events:
            yield event

    writer = AgentEventWriter(response, "cntr_1", finish)
    tally = Tally(prompt_tokens=30, completion_tokens=12)
    return [e.model_dump(mode="json") async for e in writer.chunks(agent_events(), tally)], writer


async def test_the_sdk_accumulates_a_run_of_several_rounds() -> None:
    events, writer = await written(RUN)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event))  # type: ignore[arg-type]
    final = state._completed_response
    assert final is not None and final.status == "completed"
    assert [(item.type, getattr(item, "status", None)) for item in final.output] == [
        ("message", "completed"),
        ("code_interpreter_call", "completed"),
        ("message", "completed"),
        ("code_interpreter_call", "incomplete"),
        ("message", "completed"),
    ]
    ran, never = final.output[1], final.output[3]
    assert ran.type == never.type == "code_interpreter_call"
    assert ran.code == "print(1)" and ran.container_id == "cntr_1"
    assert [o.to_dict() for o in ran.outputs or []] == [
        {"type": "logs", "logs": "1\n"},
        {"type": "image", "url": f"{FILES}/file-a/content"},
        {"type": "logs", "logs": f"[file table.csv: {FILES}/file-b/content]"},
    ]
    assert never.code == "print(2)" and never.outputs is None
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (30, 12)
    assert writer.final is not None and writer.final.model_dump(mode="json") == events[-1]["response"]
    # Every item added is done once; a code call's events come in the SDK's order.
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(done) == list(range(5))
    first_call = [e["type"] for e in events if e.get("output_index") == 1]
    assert first_call == [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]


async def test_a_content_filter_ends_the_response_incomplete() -> None:
    events, _ = await written([ToolInput("call_1", "code_interpreter", "import os"), Finished("sensitive", "failed")])
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert [item["status"] for item in last["response"]["output"]] == ["incomplete"]


def test_inline_outputs_are_told_apart_by_their_media_type() -> None:
    outputs = [
        {"type": "file", "file": "data:image/png;base64,AAAA"},
        {"type": "file", "file": "data:text/csv;base64,YSxi", "name": "t.csv"},
    ]
    assert interpreter_outputs(outputs) == [
        CodeImage(url="data:image/png;base64,AAAA"),
        CodeLogs(logs="[file t.csv: data:text/csv;base64,YSxi]"),
    ]
