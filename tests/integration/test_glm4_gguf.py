"""Any GGUF a user points at works, GLM-4 included: a tiny random GLM-4 through the real server.

The GGUF is generated here (``tests/fixtures/tiny_glm4.py``) in both GLM-4
layouts llama.cpp knows: ``chatglm`` (glm-4-9b-chat) and ``glm4``
(GLM-4-0414). Its weights are random, so the tests check structure, not
wording: the server must recognise the architecture, pick the native GLM-4
template and tool-call parser, and keep grammar-forced tool calls valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from openglm.engines.llamacpp.model import LlamaModel
from openglm.protocol.chat import ChatMessage, ToolDefinition
from openglm.serving.messages import normalize_messages
from openglm.serving.templates.chatml import ChatMLTemplate
from openglm.serving.templates.glm4 import GLM4Template
from openglm.serving.templates.jinja import JinjaTemplate

from ..fixtures.tiny_glm4 import write_tiny_glm4_gguf
from .conftest import write_catalog
from .server import RunningServer
from .streams import collect_stream

MODEL = "tiny-glm4"
CITIES = ["Beijing", "Shanghai", "Paris"]
ZONES = ["UTC", "Asia/Shanghai", "Europe/Paris"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": CITIES},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string", "enum": ZONES}}, "required": ["tz"]},
    },
}
ECHO = {
    "type": "function",
    "function": {
        "name": "echo",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 8}},
            "required": ["text"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather in Beijing?"}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Beijing", "unit": "c", "days": 1}'},
}
AFTER_CALL = [
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'},
]


@pytest.fixture(scope="module", params=["chatglm", "glm4"])
def arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def gguf_path(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_glm4_gguf(tmp_path_factory.mktemp(f"tiny-{arch}") / f"tiny-{arch}.gguf", arch)


@pytest.fixture(scope="module")
def tokenizer(gguf_path: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(str(gguf_path))
    yield model
    model.close()


@pytest.fixture(scope="module")
def glm4_server(gguf_path: Path) -> Iterator[RunningServer]:
    catalog = write_catalog(
        gguf_path.parent / "models.toml",
        f"""
[[models]]
id = "{MODEL}"
engine = "llamacpp"
source = "{gguf_path.as_posix()}"
template = "auto"
tool_parser = "auto"
context_length = 2048

[models.options]
parallel = 4
kv_tokens = 4096
""",
    )
    running = RunningServer(models_file=catalog, log=gguf_path.parent / "server.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def glm4(glm4_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{glm4_server.url}/v1", api_key="sk-test", max_retries=0, timeout=120)


def normalized(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> tuple[list[Any], list[Any]]:
    """Messages and tools exactly as the chat service hands them to a template."""
    chat = normalize_messages([ChatMessage.model_validate(m) for m in messages])
    return chat, [ToolDefinition.model_validate(t).model_dump(exclude_none=True) for t in tools or []]


def glm4_prompt_tokens(model: LlamaModel, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    chat, tool_dicts = normalized(messages, tools)
    return len(model.tokenize(GLM4Template().render(chat, tool_dicts or None)))


def assert_valid_weather_arguments(arguments: str) -> None:
    args = json.loads(arguments)
    assert set(args) == {"city", "unit", "days"}
    assert args["city"] in CITIES and args["unit"] in {"c", "f"}
    assert isinstance(args["days"], int)


# -- the file itself -----------------------------------------------------------


def test_llama_cpp_reads_the_file_as_glm4(tokenizer: LlamaModel, arch: str) -> None:
    assert tokenizer.architecture == arch
    assert tokenizer.meta("tokenizer.ggml.pre") == {"chatglm": "chatglm-bpe", "glm4": "glm4"}[arch]
    assert tokenizer.n_ctx_train == 2048
    assert not tokenizer.adds_bos
    for special in ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"):
        assert tokenizer.special_token_id(special) is not None, special
    ids = tokenizer.tokenize("[gMASK]<sop><|user|>\nhi<|assistant|>")
    assert [tokenizer.piece(t) for t in ids] == [b"[gMASK]", b"<sop>", b"<|user|>", b"\n", b"hi", b"<|assistant|>"]
    # llama.cpp ends generation on <|endoftext|> (eos) and <|user|> (eot), as for a converted glm-4-9b-chat;
    # <|observation|> is not EOG, the glm4 template stops on it instead.
    eog = {t: tokenizer.is_eog(tokenizer.special_token_id(t) or -1) for t in GLM4Template.stop_markers}
    assert eog == {"<|endoftext|>": True, "<|user|>": True, "<|observation|>": False}


def test_model_is_listed(glm4: openai.OpenAI) -> None:
    assert MODEL in [m.id for m in glm4.models.list().data]


# -- chat ------------------------------------------------------------------------


def test_plain_chat(glm4: openai.OpenAI, tokenizer: LlamaModel) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    response = glm4.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, seed=1)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert not choice.message.tool_calls
    assert choice.finish_reason in {"stop", "length"}
    usage = response.usage
    assert usage.prompt_tokens == glm4_prompt_tokens(tokenizer, messages, None)
    assert 0 <= usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 16


def test_plain_chat_streams(glm4: openai.OpenAI) -> None:
    stream = glm4.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    streamed = collect_stream(stream)
    assert streamed["calls"] == []
    assert streamed["finish"] in {"stop", "length"}
    assert 0 <= streamed["usage"].completion_tokens <= 12


def test_requests_run_side_by_side(glm4: openai.OpenAI) -> None:
    def ask(i: int) -> str | None:
        messages = [{"role": "user", "content": f"Count to {i}."}]
        return (
            glm4.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, seed=i).choices[0].finish_reason
        )

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(ask, range(4))) <= {"stop", "length"}


# -- tools -----------------------------------------------------------------------


def test_named_tool_choice_gives_one_valid_call(glm4: openai.OpenAI) -> None:
    response = glm4.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=100,
        seed=7,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert_valid_weather_arguments(call.function.arguments)
    assert not choice.message.content


def test_named_tool_choice_streams_one_valid_call(glm4: openai.OpenAI) -> None:
    stream = glm4.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=100,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = collect_stream(stream)
    assert streamed["finish"] == "tool_calls"
    (call,) = streamed["calls"]
    assert call["name"] == "get_time"
    args = json.loads(call["arguments"])
    assert args == {"tz": args["tz"]} and args["tz"] in ZONES
    assert not streamed["content"]


def test_streamed_call_matches_non_streamed(glm4: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 100,
        "temperature": 0,
    }
    whole = glm4.chat.completions.create(**kwargs).choices[0]
    streamed = collect_stream(glm4.chat.completions.create(**kwargs, stream=True))
    assert streamed["finish"] == whole.finish_reason == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in streamed["calls"]] == [
        (c.function.name, c.function.arguments) for c in whole.message.tool_calls
    ]
    assert_valid_weather_arguments(whole.message.tool_calls[0].function.arguments)


def test_required_tool_choice_gives_valid_calls(glm4: openai.OpenAI) -> None:
    response = glm4.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=100, seed=11
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls  # GLM-4 writes one call per <|assistant|> turn
    assert call.function.name in {"get_weather", "get_time"}
    json.loads(call.function.arguments)


def test_the_native_glm4_template_renders_the_prompt(glm4: openai.OpenAI, tokenizer: LlamaModel) -> None:
    """The prompt the server counted is the GLM-4 prompt, tools block and all, not the GGUF's jinja or ChatML."""
    response = glm4.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=100,
    )
    expected = glm4_prompt_tokens(tokenizer, ASK, [WEATHER])
    assert response.usage.prompt_tokens == expected

    # The check tells the candidates apart: the model's own template (rendered as
    # template="gguf" would) and ChatML give other token counts for this request.
    chat, tools = normalized(ASK, [WEATHER])
    gguf_prompt = JinjaTemplate(tokenizer.chat_template or "").render(chat, tools)
    chatml_prompt = ChatMLTemplate().render(chat, tools)
    assert expected not in {len(tokenizer.tokenize(gguf_prompt)), len(tokenizer.tokenize(chatml_prompt))}


def test_tool_result_continues_the_conversation(glm4: openai.OpenAI, tokenizer: LlamaModel) -> None:
    response = glm4.chat.completions.create(model=MODEL, messages=AFTER_CALL, tools=[WEATHER], max_tokens=24, seed=5)
    choice = response.choices[0]
    assert choice.finish_reason in {"stop", "length", "tool_calls"}
    for call in choice.message.tool_calls or []:
        assert call.function.name == "get_weather"
    # The call went back in as an assistant turn with the name as metadata, the result as an observation.
    chat, tools = normalized(AFTER_CALL, [WEATHER])
    prompt = GLM4Template().render(chat, tools)
    assert '<|assistant|>get_weather\n{"city": "Beijing", "unit": "c", "days": 1}<|observation|>\n{"temp": 21' in prompt
    assert response.usage.prompt_tokens == len(tokenizer.tokenize(prompt))


def test_tool_result_then_forced_call(glm4: openai.OpenAI) -> None:
    response = glm4.chat.completions.create(
        model=MODEL,
        messages=AFTER_CALL,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=100,
        stream=False,
    )
    (call,) = response.choices[0].message.tool_calls
    assert response.choices[0].finish_reason == "tool_calls"
    assert_valid_weather_arguments(call.function.arguments)


ESC = 0x1B  # the tiny vocabulary's byte tokens have the byte's value as their id


def test_forced_string_arguments_are_valid_json(glm4: openai.OpenAI) -> None:
    """The grammar, not the model, must keep strings valid: a model that loves ESC still writes valid JSON."""
    response = glm4.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[ECHO],
        tool_choice={"type": "function", "function": {"name": "echo"}},
        max_tokens=60,
        temperature=0,
        logit_bias={str(ESC): 100},
    )
    (call,) = response.choices[0].message.tool_calls
    args = json.loads(call.function.arguments)
    assert isinstance(args["text"], str) and len(args["text"]) <= 8
