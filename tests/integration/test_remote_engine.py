"""A gateway whose model is served by another OpenAI-compatible server (here: a second OpenGLM)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import write_catalog
from .server import RunningServer


@pytest.fixture(scope="module")
def gateway(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("remote")
    catalog = write_catalog(
        tmp / "models.toml",
        f"""
[[models]]
id = "upstream-smollm2"
engine = "remote"
source = "{server.url}/v1"
template = "chatml"
tool_parser = "hermes"
context_length = 8192

[models.options]
remote_model = "default"
""",
    )
    running = RunningServer(models_file=catalog, log=tmp / "gateway.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def remote(gateway: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0, timeout=120)


def test_chat_through_remote_engine(remote: openai.OpenAI) -> None:
    response = remote.chat.completions.create(
        model="upstream-smollm2", messages=[{"role": "user", "content": "Hello!"}], max_tokens=12, temperature=0
    )
    assert response.choices[0].message.content
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 12


def test_streaming_through_remote_engine_matches(remote: openai.OpenAI) -> None:
    kwargs = {
        "model": "upstream-smollm2",
        "messages": [{"role": "user", "content": "Name a color."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    whole = remote.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in remote.chat.completions.create(**kwargs, stream=True)  # type: ignore[call-overload]
        if c.choices
    )
    assert streamed == whole


def test_stop_strings_through_the_remote_engine_keep_usage(remote: openai.OpenAI) -> None:
    kwargs = {
        "model": "upstream-smollm2",
        "messages": [{"role": "user", "content": "Count from 1 to 20."}],
        "max_tokens": 40,
        "temperature": 0,
    }
    text = remote.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    # An early stop point: two greedy runs can part ways late on a near-tie (the second reuses the cached prompt,
    # evaluated in other batch sizes); the text before the first quarter has been the same in every run.
    stop = text[len(text) // 4 : len(text) // 4 + 2]
    cut = remote.chat.completions.create(**kwargs, stop=[stop])  # type: ignore[call-overload]
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.prompt_tokens > 0 and cut.usage.completion_tokens > 0, "usage survives an early stop"


def test_grammar_travels_to_the_remote_engine(remote: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
    response = remote.chat.completions.create(
        model="upstream-smollm2",
        messages=[{"role": "user", "content": "Add 2 and 3."}],
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=60,
        temperature=0,
    )
    (call,) = response.choices[0].message.tool_calls
    assert call.function.name == "add"
    args = json.loads(call.function.arguments)
    assert isinstance(args["a"], int) and isinstance(args["b"], int)


def test_remote_errors_are_translated(remote: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        remote.chat.completions.create(model="upstream-smollm2", messages=[{"role": "user", "content": "hi " * 9000}])
    assert "1261" in str(info.value.body) or "too long" in str(info.value).lower()


def test_upstream_failure_mid_stream_is_reported_in_band(tmp_path: Path) -> None:
    """If the engine dies while streaming, the client gets a data: {"error"} event and [DONE], not a cut socket."""
    upstream = RunningServer(log=tmp_path / "upstream.log")
    catalog = write_catalog(
        tmp_path / "models.toml",
        f'[[models]]\nid = "fragile"\nengine = "remote"\nsource = "{upstream.url}/v1"\ntemplate = "chatml"\n'
        '[models.options]\nremote_model = "default"\n',
    )
    gateway = RunningServer(models_file=catalog, log=tmp_path / "gateway.log")
    try:
        body = {
            "model": "fragile",
            "messages": [{"role": "user", "content": "Write a very long story."}],
            "max_tokens": 4000,
            "stream": True,
            "logit_bias": {"0": -100, "2": -100},
        }
        events: list[str] = []
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(line[6:])
                if len(events) == 3:
                    upstream.process.kill()  # the GPU box goes away mid-answer
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "1260" and "remote engine" in error["message"]
    finally:
        gateway.stop()
        upstream.stop()


def test_abandoned_stream_is_cancelled_upstream(server: RunningServer, gateway: RunningServer) -> None:
    body = {
        "model": "upstream-smollm2",
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 4000,
        "stream": True,
        "logit_bias": {"0": -100, "2": -100},
    }
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # hang up on the gateway after the first token
    for _ in range(100):
        stats = httpx.get(f"{server.url}/health").json()["engines"]["smollm2-135m-instruct"]
        if stats["active"] == 0:
            break
        time.sleep(0.1)
    assert stats["active"] == 0, "the upstream generation stopped when the gateway's client left"


def test_remote_engine_with_keys(tmp_path: Path) -> None:
    """An upstream that needs a key: the gateway's configured key works; a wrong one is the operator's error
    (500, 1260), not a 400 blamed on the caller."""
    upstream = RunningServer(log=tmp_path / "upstream.log", env={"OPENGLM_AUTH": "on"})
    try:
        good = upstream.cli("keys", "create").strip()
        catalog = write_catalog(
            tmp_path / "models.toml",
            "".join(
                f'[[models]]\nid = "{name}"\nengine = "remote"\nsource = "{upstream.url}/v1"\ntemplate = "chatml"\n'
                f'[models.options]\nremote_model = "default"\napi_key = "{key}"\n'
                for name, key in (("keyed", good), ("misconfigured", good.split(".")[0] + ".wrong"))
            ),
        )
        gateway = RunningServer(models_file=catalog, log=tmp_path / "gateway.log")
        try:
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-local", max_retries=0)
            reply = client.chat.completions.create(
                model="keyed", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="misconfigured", messages=[{"role": "user", "content": "Hi"}])
            assert "1260" in str(info.value.body) and "api_key" in str(info.value.body)
        finally:
            gateway.stop()
    finally:
        upstream.stop()


def test_the_tokenizer_counts_through_the_remote_engine(remote: openai.OpenAI, gateway: RunningServer) -> None:
    """The upstream (an OpenGLM: no /tokenize) counts through a one-token completion: the same count the chat
    call reports."""
    messages = [{"role": "user", "content": "How many tokens is this sentence?"}]
    chat = remote.chat.completions.create(model="upstream-smollm2", messages=messages, max_tokens=1)  # type: ignore[arg-type]
    counted = httpx.post(
        f"{gateway.url}/api/paas/v4/tokenizer", json={"model": "upstream-smollm2", "messages": messages}
    ).json()
    assert chat.usage is not None and counted["usage"]["prompt_tokens"] == chat.usage.prompt_tokens
