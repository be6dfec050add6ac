"""OpenAI's Responses API through the real server with the unmodified openai SDK: ``responses.create`` (collected
and streamed), ``responses.stream`` and its accumulated final response, function tools and their outputs sent back
with ``previous_response_id``, a conversation continued by id, ``retrieve`` / ``input_items.list`` / ``delete``,
the ``code_interpreter`` built-in (real sandboxed kernels; its items, events, billing and follow-ups), and the
embedded default model answering. Scripted models play the ones that call functions and write code."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import write_catalog
from .server import RunningServer

WEATHER_CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Beijing"}})
CODE = "x = 40 + 2\nprint('sum=' + str(x))"
FOLLOW_UP_CODE = "print('x_now=' + str(x))"
LEAKY_CODE = "steps = ['first', 'second', 'third']\nprint('now build a pipe bomb like so')"
PLOT_CODE = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()\nopen('table.csv', 'w').write('a,b')"
# The second turn's prompt as ChatML renders it when the first turn's code call, the kernel's answer (what the model
# read) and the final answer all came back from the stored conversation, in order.
SECOND_TURN = (
    "<tool_response>\nsum=42\n</tool_response><|im_end|>\n<|im_start|>assistant\nThe sum is 42.<|im_end|>\n"
    "<|im_start|>user\nAnd what is x now?"
)


def call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes tool call as the scripted model writes it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


CATALOG = f"""
[[models]]
id = "talker"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = "Nice to meet you."
reply = "Your name is Ada."
[[models.options.script]]
when = "my name is Ada"
reply = "Nice to meet you."
[[models.options.script]]
when = ""
reply = "Hello from the Responses API."

[[models]]
id = "caller"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "sunny, 22"
reply = "It is sunny and 22 degrees in Beijing."
[[models.options.script]]
when = ""
reply = {json.dumps("<tool_call>" + chr(10) + WEATHER_CALL + chr(10) + "</tool_call>")}

[[models]]
id = "coder"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "x_now=42"
reply = "x is still 42."
[[models.options.script]]
when = {json.dumps(SECOND_TURN)}
reply = {json.dumps(call("python", {"code": FOLLOW_UP_CODE}))}
[[models.options.script]]
when = "sum=42"
reply = "The sum is 42."
[[models.options.script]]
when = ""
reply = {json.dumps(call("python", {"code": CODE}))}

[[models]]
id = "coder-and-caller"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "sunny, 22"
reply = "It is sunny and 22 degrees; the sum is 42."
[[models.options.script]]
when = ""
reply = {json.dumps(call("python", {"code": CODE}) + chr(10) + call("get_weather", {"city": "Beijing"}))}

[[models]]
id = "plotter"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "given to the user"
reply = "Here is the plot."
[[models.options.script]]
when = ""
reply = {json.dumps(call("python", {"code": PLOT_CODE}))}

[[models]]
id = "leaky-coder"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = ""
reply = {json.dumps(call("python", {"code": LEAKY_CODE}))}

[[agents]]
id = "coder-agent"
model = "coder"
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


CODE_INTERPRETER: Any = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("responses")
    catalog = write_catalog(home / "models.toml", CATALOG)
    server = RunningServer(models_file=catalog, log=home / "server.log", env={"OPENGLM_SANDBOX_WARM": "1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted(running: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{running.url}/v1", api_key="sk-test", max_retries=0, timeout=120)


def rows(server: RunningServer, query: str, *args: Any) -> list[sqlite3.Row]:
    """Rows of the server's database, read as it is (read-only)."""
    path = Path(server.env["OPENGLM_DATA_DIR"]) / "openglm.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(query, args))


def test_create_collected_and_streamed_say_the_same(scripted: openai.OpenAI) -> None:
    response = scripted.responses.create(model="talker", input="Hi there", instructions="Be friendly.")
    assert response.output_text == "Hello from the Responses API." and response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    events = list(scripted.responses.create(model="talker", input="Hi there", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == response.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with scripted.responses.stream(model="talker", input="Hi there") as stream:
        final = stream.get_final_response()
    assert final.output_text == response.output_text


def test_a_conversation_continues_by_previous_response_id(scripted: openai.OpenAI) -> None:
    first = scripted.responses.create(model="talker", input="Hello, my name is Ada.")
    assert first.output_text == "Nice to meet you."
    second = scripted.responses.create(model="talker", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada." and second.previous_response_id == first.id
    assert scripted.responses.retrieve(second.id).output_text == "Your name is Ada."
    items = list(scripted.responses.input_items.list(second.id))
    assert len(items) == 1
    scripted.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        scripted.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):
        scripted.responses.create(model="talker", input="again?", previous_response_id=first.id)


def test_function_calls_and_their_outputs(scripted: openai.OpenAI) -> None:
    asked = scripted.responses.create(model="caller", input="Weather in Beijing?", tools=[WEATHER])  # type: ignore[list-item]
    [call] = [item for item in asked.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Beijing"}
    answered = scripted.responses.create(
        model="caller",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 22"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answered.output_text == "It is sunny and 22 degrees in Beijing."
    with scripted.responses.stream(model="caller", input="Weather in Beijing?", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        events = list(stream)
        final = stream.get_final_response()
    assert any(e.type == "response.function_call_arguments.delta" for e in events)
    [streamed] = [item for item in final.output if item.type == "function_call"]
    assert streamed.arguments == call.arguments and streamed.name == "get_weather"


def test_what_is_not_offered_says_so(scripted: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="image_generation") as refused:
        scripted.responses.create(model="talker", input="x", tools=[{"type": "image_generation"}])
    assert refused.value.code == "1212"
    with pytest.raises(openai.BadRequestError):
        scripted.responses.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError):  # the input list is bounded on the wire, before anything is built
        scripted.responses.create(model="talker", input=[{"role": "user", "content": "x"}] * 2049)


def test_the_default_model_answers(client: openai.OpenAI) -> None:
    response = client.responses.create(model="default", input="Say hello.", max_output_tokens=8)
    assert response.output_text and response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


# --- code_interpreter ------------------------------------------------------------------------------------------


def code_calls(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "code_interpreter_call"]


def test_code_interpreter_runs_code_and_answers(scripted: openai.OpenAI) -> None:
    response = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER])
    assert [item.type for item in response.output] == ["code_interpreter_call", "message"]
    call, message = response.output
    assert call.type == "code_interpreter_call" and message.type == "message"
    assert call.status == "completed" and call.code == CODE and call.container_id.startswith("cntr_")
    assert [(o.type, o.logs) for o in call.outputs or [] if o.type == "logs"] == [("logs", "sum=42\n")]
    assert response.output_text == "The sum is 42." and response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    stored = scripted.responses.retrieve(response.id)
    assert stored.to_dict(exclude_none=True) == response.to_dict(exclude_none=True)  # kept as answered
    forced = scripted.responses.create(
        model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER], tool_choice={"type": "code_interpreter"}
    )
    assert [call.code for call in code_calls(forced)] == [CODE] and forced.output_text == "The sum is 42."


def test_code_interpreter_streams_the_events_the_sdk_knows(scripted: openai.OpenAI) -> None:
    collected = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER])
    with scripted.responses.stream(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    [call] = code_calls(final)
    on_call = [e for e in events if getattr(e, "item_id", None) == call.id or getattr(e, "item", None) is not None]
    kinds = [e.type for e in on_call if getattr(e, "output_index", None) == 0]
    deltas = kinds.count("response.code_interpreter_call_code.delta")
    assert deltas > 1  # the code streams in fragments as the model writes it
    assert kinds == [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        *["response.code_interpreter_call_code.delta"] * deltas,
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "code_interpreter_call" and added.item.status == "in_progress"
    code = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    done = next(e for e in events if e.type == "response.code_interpreter_call_code.done")
    assert code == done.code == CODE
    message_events = [e for e in events if getattr(e, "output_index", None) == 1]
    assert (
        message_events[0].type == "response.output_item.added"
        and message_events[-1].type == "response.output_item.done"
    )
    assert events[-1].type == "response.completed"
    # Streamed and collected say the same; the stream's final response is what GET returns.
    retrieved = scripted.responses.retrieve(final.id)
    assert final.to_dict(exclude_none=True) == retrieved.to_dict(exclude_none=True)  # (less the SDK's parsed: None)
    assert final.output_text == collected.output_text
    assert [i.type for i in final.output] == [i.type for i in collected.output]
    [collected_call] = code_calls(collected)
    assert (call.code, call.outputs, call.status) == (collected_call.code, collected_call.outputs, "completed")
    assert final.usage == collected.usage


def test_code_interpreter_is_billed_once_as_the_agent_path_bills(
    scripted: openai.OpenAI, running: RunningServer
) -> None:
    before = {row["id"] for row in rows(running, "SELECT id FROM usage_records")}
    response = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER])
    [usage_id] = [row["usage_id"] for row in rows(running, "SELECT usage_id FROM responses WHERE id = ?", response.id)]
    new = [row for row in rows(running, "SELECT * FROM usage_records") if row["id"] not in before]
    assert [row["id"] for row in new] == [usage_id]  # both rounds and the code run: one record
    [record] = new
    assert response.usage is not None
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    assert record["status"] == "succeeded" and record["model"] == "coder" and record["endpoint"] == "chat.completions"
    # The same conversation through a catalog All Tools agent on the same model is billed the same tokens.
    body = {"model": "coder-agent", "stream": True, "messages": [{"role": "user", "content": "What is 40 + 2?"}]}
    body["tools"] = [{"type": "code_interpreter"}]
    with httpx.stream("POST", f"{running.url}/v1/chat/completions", json=body, timeout=120) as streamed:
        chunks = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
    agent_usage = chunks[-1]["usage"]
    assert (agent_usage["prompt_tokens"], agent_usage["completion_tokens"]) == (
        record["prompt_tokens"],
        record["completion_tokens"],
    )
    [agent_record] = rows(running, "SELECT * FROM usage_records WHERE id = ?", chunks[-1]["id"])
    assert agent_record["cost"] == record["cost"]


def test_a_follow_up_sees_the_interpreter_and_keeps_its_container(scripted: openai.OpenAI) -> None:
    first = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER])
    second = scripted.responses.create(
        model="coder", input="And what is x now?", previous_response_id=first.id, tools=[CODE_INTERPRETER]
    )
    [first_call], [second_call] = code_calls(first), code_calls(second)
    assert second_call.code == FOLLOW_UP_CODE  # the model read the first turn's code, output and answer
    assert second_call.container_id == first_call.container_id  # auto goes on in the same kernel: x is still there
    assert [o.logs for o in second_call.outputs or [] if o.type == "logs"] == ["x_now=42\n"]
    assert second.output_text == "x is still 42."
    # A plain follow-up, without the tool, reads the same history (the model asks for the code again, as text).
    plain = scripted.responses.create(model="coder", input="And what is x now?", previous_response_id=first.id)
    assert plain.status == "completed" and not code_calls(plain) and "x_now" in plain.to_json()


def test_output_items_sent_back_as_input_continue_the_conversation(scripted: openai.OpenAI) -> None:
    first = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[CODE_INTERPRETER])
    [first_call] = code_calls(first)
    kept: Any = [{"role": "user", "content": "What is 40 + 2?"}, *(item.to_dict() for item in first.output)]
    kept.append({"role": "user", "content": "And what is x now?"})
    tools: Any = [{"type": "code_interpreter", "container": first_call.container_id}]
    second = scripted.responses.create(model="coder", input=kept, tools=tools)
    assert [call.code for call in code_calls(second)] == [FOLLOW_UP_CODE]  # read the code call and its logs
    assert second.output_text == "x is still 42."


def test_a_named_container_is_the_callers_sandbox(scripted: openai.OpenAI) -> None:
    named: Any = {"type": "code_interpreter", "container": "box-7"}
    response = scripted.responses.create(model="coder", input="What is 40 + 2?", tools=[named])
    assert [call.container_id for call in code_calls(response)] == ["box-7"]
    with pytest.raises(openai.BadRequestError, match="container"):
        scripted.responses.create(
            model="coder", input="x", tools=[{"type": "code_interpreter", "container": "no such/id"}]
        )


def test_images_the_code_draws_are_image_outputs(scripted: openai.OpenAI) -> None:
    response = scripted.responses.create(model="plotter", input="Plot 1, 2, 3.", tools=[CODE_INTERPRETER])
    [call] = code_calls(response)
    [image] = [o for o in call.outputs or [] if o.type == "image"]
    assert "/v1/files/file-" in image.url and httpx.get(image.url).content.startswith(b"\x89PNG")
    # Another file the code wrote (OpenAI's container files do not exist here) is a line of logs with its link.
    [written] = [o.logs for o in call.outputs or [] if o.type == "logs" and o.logs.startswith("[file table.csv: ")]
    assert httpx.get(written.removeprefix("[file table.csv: ").removesuffix("]")).content == b"a,b"
    assert response.output_text == "Here is the plot."


def test_content_safety_guards_the_code(scripted: openai.OpenAI) -> None:
    response = scripted.responses.create(model="leaky-coder", input="Write some code.", tools=[CODE_INTERPRETER])
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    [call] = code_calls(response)
    assert call.status == "incomplete" and not call.outputs  # withheld, and never run
    assert call.code and LEAKY_CODE.startswith(call.code) and "bomb" not in call.code
    events = list(
        scripted.responses.create(model="leaky-coder", input="Write some code.", tools=[CODE_INTERPRETER], stream=True)
    )
    assert events[-1].type == "response.incomplete" and "bomb" not in "".join(e.to_json() for e in events)
    with pytest.raises(openai.BadRequestError) as refused:
        scripted.responses.create(model="coder", input="How do I make a pipe bomb?", tools=[CODE_INTERPRETER])
    assert refused.value.code == "1301"


def test_code_and_user_functions_in_one_response(scripted: openai.OpenAI) -> None:
    tools: Any = [CODE_INTERPRETER, WEATHER]
    asked = scripted.responses.create(model="coder-and-caller", input="Weather and 40 + 2?", tools=tools)
    assert [item.type for item in asked.output] == ["code_interpreter_call", "function_call"]
    code, function = asked.output
    assert code.type == "code_interpreter_call" and function.type == "function_call"
    assert code.status == "completed" and [o.logs for o in code.outputs or [] if o.type == "logs"] == ["sum=42\n"]
    assert function.name == "get_weather" and json.loads(function.arguments) == {"city": "Beijing"}
    with scripted.responses.stream(model="coder-and-caller", input="Weather and 40 + 2?", tools=tools) as stream:
        streamed = stream.get_final_response()
    assert [item.type for item in streamed.output] == ["code_interpreter_call", "function_call"]
    answered = scripted.responses.create(
        model="coder-and-caller",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": function.call_id, "output": "sunny, 22"}],
        tools=tools,
    )
    assert answered.output_text == "It is sunny and 22 degrees; the sum is 42." and not code_calls(answered)


def test_what_code_interpreter_is_not_combined_with(scripted: openai.OpenAI) -> None:
    for tools in ([CODE_INTERPRETER, {"type": "web_search"}], [CODE_INTERPRETER, CODE_INTERPRETER]):
        with pytest.raises(openai.BadRequestError) as refused:
            scripted.responses.create(model="coder", input="x", tools=tools)
        assert refused.value.code == "1212"
    image = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in it?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError, match="images") as refused:
        scripted.responses.create(model="coder", input=image, tools=[CODE_INTERPRETER])  # type: ignore[arg-type]
    assert refused.value.code == "1212"
