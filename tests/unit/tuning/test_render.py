"""Training lines rendered by the serving templates: what is trained is what serving prompts with and parses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openglm.errors import InvalidFieldError
from openglm.protocol.chat import ChatMessage
from openglm.serving.messages import adapt_for_template, normalize_messages
from openglm.serving.models import choose_parser
from openglm.serving.templates.base import ChatTemplate, choose_template
from openglm.serving.templates.jinja import JinjaTemplate
from openglm.tuning.render import IGNORE, Renderer, reply_calls, served_text

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


TOOL_LINE = {
    "tools": [WEATHER, TIME],
    "messages": [
        {"role": "user", "content": "Weather in Paris, and the time?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [call("c1", "get_weather", {"city": "Paris"}), call("c2", "get_time", {})],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
        {"role": "tool", "tool_call_id": "c2", "content": "14:05"},
        {"role": "assistant", "content": "Sunny and 21 C; it is 14:05."},
    ],
}
CHAT_LINE = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the Zorblat code word?"},
        {"role": "assistant", "content": "PAPRIKA-7."},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "PAPRIKA-7, again."},
    ]
}
# A jinja template in the Hugging Face style that renders tools and calls itself (Qwen-like, hermes calls).
HERMES_JINJA = (
    "{% if tools %}<|im_start|>system\n# Tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}{% if m.content or not loop.first %}\n{% endif %}<tool_call>\n"
    '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}'
    "<|im_end|>\n{% elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def templates(renderer: Renderer) -> dict[str, ChatTemplate]:
    return {
        "gguf": renderer.template,  # SmolLM2's own: no tools in the template, calls as hermes text
        "chatml": choose_template("chatml", {}),
        "glm4": choose_template("glm4", {}),
        "gguf-tools": JinjaTemplate(HERMES_JINJA, eos_token="<|im_end|>"),
    }


def with_template(renderer: Renderer, name: str) -> Renderer:
    template = templates(renderer)[name]
    return Renderer(template, choose_parser("auto", template), renderer.tokenizer)


def text(renderer: Renderer, ids: list[int]) -> str:
    model = renderer.tokenizer.model  # type: ignore[attr-defined]
    return b"".join(model.piece(t) for t in ids).decode()


def labelled_runs(renderer: Renderer, ids: list[int], labels: list[int]) -> list[str]:
    """The trained spans, in order, as text."""
    runs: list[list[int]] = []
    for i, (token, label) in enumerate(zip(ids, labels, strict=True)):
        if label == IGNORE:
            continue
        assert label == token
        if i == 0 or labels[i - 1] == IGNORE:
            runs.append([])
        runs[-1].append(token)
    return [text(renderer, run) for run in runs]


def test_chat_line_trains_only_the_assistant_replies_after_the_served_prompt(renderer: Renderer) -> None:
    (example,) = renderer.chat(CHAT_LINE)
    assert labelled_runs(renderer, example.input_ids, example.labels) == [
        "PAPRIKA-7.<|im_end|>",
        "PAPRIKA-7, again.<|im_end|>",
    ]
    # The first reply follows exactly the tokens serving prompts with for that turn.
    messages = normalize_messages([ChatMessage.model_validate(m) for m in CHAT_LINE["messages"]])
    prompt = renderer.template.render(messages[:2], None)
    prompt_ids = renderer.tokenizer.encode(prompt, prompt_start=True)
    assert example.input_ids[: len(prompt_ids)] == prompt_ids
    assert example.labels[len(prompt_ids) - 1] == IGNORE and example.labels[len(prompt_ids)] != IGNORE
    assert text(renderer, example.input_ids).startswith("<|im_start|>system\nYou are terse.<|im_end|>")


@pytest.mark.parametrize("name", ["gguf", "chatml", "glm4", "gguf-tools"])
def test_tool_call_replies_are_what_the_serving_parser_reads_back(renderer: Renderer, name: str) -> None:
    r = with_template(renderer, name)
    examples = r.chat(TOOL_LINE)
    assert len(examples) == 1
    runs = labelled_runs(r, examples[0].input_ids, examples[0].labels)
    assert len(runs) == 2
    tools = TOOL_LINE["tools"]
    parser = r.parser(tools)
    assert reply_calls(parser, runs[0], r.template) == [("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]
    assert parser.parse(served_text(runs[0], r.template), final=True).content == "Let me check."
    assert reply_calls(parser, runs[1], r.template) == []
    assert parser.parse(served_text(runs[1], r.template), final=True).content == "Sunny and 21 C; it is 14:05."
    # Each reply ends with a marker serving stops on, so the model learns to stop.
    assert any(runs[0].endswith(marker) for marker in r.template.stop_markers)
    # The tool results are context, never targets.
    assert all("sunny, 21 C" not in run for run in runs)
    assert "sunny, 21 C" in text(r, examples[0].input_ids)


def test_render_reply_matches_the_templates_own_history(renderer: Renderer) -> None:
    """A reply rendered for training and the same message rendered as history by ``render`` are the same text."""
    for name in ("gguf", "chatml", "glm4", "gguf-tools"):
        r = with_template(renderer, name)
        tools = TOOL_LINE["tools"]
        messages = normalize_messages([ChatMessage.model_validate(m) for m in TOOL_LINE["messages"]])
        adapted = adapt_for_template(messages, r.template, r.parser(tools), tools)
        i = next(n for n, m in enumerate(adapted) if m["role"] == "assistant")
        prompt = r.template.render(adapted[:i], tools)
        reply = r.template.render_reply(adapted[i], adapted[:i], tools)
        later = r.template.render(adapted[: i + 3], tools)
        assert later.startswith(prompt + reply), name


def test_weight_zero_replies_are_context_only(renderer: Renderer) -> None:
    line = json.loads(json.dumps(CHAT_LINE))
    line["messages"][2]["weight"] = 0
    (example,) = renderer.chat(line)
    assert labelled_runs(renderer, example.input_ids, example.labels) == ["PAPRIKA-7, again.<|im_end|>"]
    assert "PAPRIKA-7.<|im_end|>" in text(renderer, example.input_ids)


def test_dpo_line_shares_the_prompt_and_differs_in_the_reply(renderer: Renderer) -> None:
    pair = renderer.preference(
        {
            "input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
            "preferred_output": [{"role": "assistant", "content": "Paris."}],
            "non_preferred_output": [{"role": "assistant", "content": "Lyon, I think."}],
        }
    )
    assert text(renderer, pair.prompt).endswith(
        "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text(renderer, pair.chosen) == "Paris.<|im_end|>"
    assert text(renderer, pair.rejected) == "Lyon, I think.<|im_end|>"
    chosen, rejected = pair.examples()
    assert chosen.input_ids[: len(pair.prompt)] == rejected.input_ids[: len(pair.prompt)]
    assert chosen.trained_tokens == len(pair.chosen)


def test_glm4_dpo_line_with_tools(renderer: Renderer) -> None:
    r = with_template(renderer, "glm4")
    pair = r.preference(
        {
            "input": {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]},
            "preferred_output": [{"role": "assistant", "tool_calls": [call("c1", "get_weather", {"city": "Paris"})]}],
            "non_preferred_output": [{"role": "assistant", "content": "I cannot know."}],
        }
    )
    parser = r.parser([WEATHER])
    assert reply_calls(parser, text(r, pair.chosen), r.template) == [("get_weather", '{"city": "Paris"}')]
    assert text(r, pair.chosen).endswith("<|observation|>")
    assert text(r, pair.rejected).endswith("<|user|>")


@pytest.mark.parametrize(
    "line",
    [
        {"messages": [{"role": "user", "content": "no reply"}]},
        {"messages": []},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant"}]},
        {"messages": [{"role": "tool", "content": "orphan"}, {"role": "assistant", "content": "x"}]},
    ],
)
def test_lines_that_cannot_be_trained_are_refused(renderer: Renderer, line: dict[str, Any]) -> None:
    with pytest.raises(InvalidFieldError):
        renderer.chat(line)


def test_the_gguf_vocabulary_and_transformers_tokenizer_agree(renderer: Renderer, gguf_path: str) -> None:
    """Training tokenizes with llama.cpp's vocabulary; transformers' tokenizer from the same GGUF gives the same ids."""
    from pathlib import Path

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(Path(gguf_path).parent), gguf_file=Path(gguf_path).name)
    texts = [
        renderer.template.render(
            normalize_messages([ChatMessage.model_validate(m) for m in TOOL_LINE["messages"]]), None
        ),
        "  leading spaces, tabs\tand\nnewlines  ",
        "中文和日本語のテキスト, emoji 🎉🧪, accents: café naïve",
        'JSON {"a": [1, 2.5e-3, null], "b": "\\u00e9"}</tool_call><|im_end|>',
    ]
    for text in texts:
        assert renderer.tokenizer.encode(text, prompt_start=False) == hf.encode(text, add_special_tokens=False), text
