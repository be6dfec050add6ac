"""OpenAI's Responses API through the real server with the unmodified openai SDK: ``responses.create`` (collected
and streamed), ``responses.stream`` and its accumulated final response, function tools and their outputs sent back
with ``previous_response_id``, a conversation continued by id, ``retrieve`` / ``input_items.list`` / ``delete``,
and the embedded default model answering. Scripted models play the ones that call functions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from .conftest import write_catalog
from .server import RunningServer

WEATHER_CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Beijing"}})
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
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    home = tmp_path_factory.mktemp("responses")
    running = RunningServer(models_file=write_catalog(home / "models.toml", CATALOG), log=home / "server.log")
    yield openai.OpenAI(base_url=f"{running.url}/v1", api_key="sk-test", max_retries=0)
    running.stop()


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
    with pytest.raises(openai.BadRequestError, match="code_interpreter"):
        scripted.responses.create(
            model="talker", input="x", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
        )  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError):
        scripted.responses.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError):  # the input list is bounded on the wire, before anything is built
        scripted.responses.create(model="talker", input=[{"role": "user", "content": "x"}] * 2049)  # type: ignore[list-item]


def test_the_default_model_answers(client: openai.OpenAI) -> None:
    response = client.responses.create(model="default", input="Say hello.", max_output_tokens=8)
    assert response.output_text and response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
