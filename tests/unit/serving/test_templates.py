"""Golden tests: our GLM-4 template against the model's own chat_template.

``golden/glm4_chat_template.jinja`` is glm-4-9b-chat's ``tokenizer_config.json``
template, verbatim. It is rendered here with a plain jinja2 environment and
transformers' ``tojson`` (key order kept, no ASCII escaping).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest

from openglm.errors import InvalidRequestError
from openglm.serving.templates.base import choose_template
from openglm.serving.templates.glm4 import GLM4Template
from openglm.serving.templates.jinja import JinjaTemplate

GOLDEN = Path(__file__).parent / "golden" / "glm4_chat_template.jinja"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def official(messages: list[dict[str, Any]]) -> str:
    env = jinja2.Environment()
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    return env.from_string(GOLDEN.read_text(encoding="utf-8")).render(messages=messages, add_generation_prompt=True)


def test_plain_conversation_matches_official() -> None:
    ours = [
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "你好"},
    ]
    assert GLM4Template().render(ours, None) == official(ours)
    assert GLM4Template().render(ours, None).startswith("[gMASK]<sop><|system|>\nYou are helpful<|user|>\nhi")


def test_tools_block_matches_official_and_precedes_system() -> None:
    ours = [{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "weather?"}]
    theirs = [{"role": "system", "content": "You are helpful", "tools": [WEATHER]}, ours[1]]
    rendered = GLM4Template().render(ours, [WEATHER])
    assert rendered == official(theirs)
    assert rendered.index("# 可用工具") < rendered.index("You are helpful")


def test_builtin_tools_match_official() -> None:
    tools = [WEATHER, {"type": "python"}, {"type": "simple_browser"}, {"type": "cogview"}]
    ours = [{"role": "user", "content": "hi"}]
    assert GLM4Template().render(ours, tools) == official([{"role": "system", "content": "", "tools": tools}, *ours])


def test_tool_call_and_observation_turns_match_official() -> None:
    args = '{"city": "Beijing"}'
    ours = [
        {"role": "user", "content": "weather in Beijing?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": args}]},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "c1", "name": "get_weather"},
    ]
    theirs = [
        {"role": "system", "content": "", "tools": [WEATHER]},
        ours[0],
        {"role": "assistant", "metadata": "get_weather", "content": args},
        {"role": "observation", "content": '{"temp": 21}'},
    ]
    rendered = GLM4Template().render(ours, [WEATHER])
    assert rendered == official(theirs)
    assert rendered.endswith('<|assistant|>get_weather\n{"city": "Beijing"}<|observation|>\n{"temp": 21}<|assistant|>')


def test_glm4_stop_markers() -> None:
    assert GLM4Template.stop_markers == ("<|endoftext|>", "<|user|>", "<|observation|>")


def test_auto_picks_glm4_for_glm_architectures() -> None:
    assert choose_template("auto", {"architecture": "chatglm"}).name == "glm4"
    assert choose_template("auto", {"architecture": "glm4", "chat_template": "{{ x }}"}).name == "glm4"
    assert choose_template("auto", {"architecture": "llama", "chat_template": "{{ x }}"}).name == "gguf"
    assert choose_template("auto", {"architecture": "llama"}).name == "chatml"


def test_unknown_template_lists_known_names() -> None:
    with pytest.raises(KeyError, match="chatml, gguf, glm4"):
        choose_template("nope", {})


def test_gguf_template_renders_in_sandbox() -> None:
    source = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
    template = JinjaTemplate(source)
    assert template.render([{"role": "user", "content": "hi"}], None) == "<user>hi<a>"
    assert not template.renders_tools


def test_gguf_template_cannot_escape_sandbox() -> None:
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidRequestError):
        JinjaTemplate(evil).render([{"role": "user", "content": "x"}], None)


def test_gguf_template_raise_exception_is_a_request_error() -> None:
    template = JinjaTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequestError, match="roles must alternate"):
        template.render([{"role": "user", "content": "x"}], None)


def test_chatml_fallback() -> None:
    rendered = choose_template("chatml", {}).render([{"role": "user", "content": "hi"}], None)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
