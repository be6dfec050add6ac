"""The template a GGUF carries in ``tokenizer.chat_template``, rendered in a jinja2 sandbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ...errors import InvalidFieldError, InvalidRequestError
from ...untrusted.loaders import load_json
from .base import ChatTemplate, Message, templates


def _raise(message: str) -> NoReturn:
    raise InvalidRequestError(f"the model's chat template rejected the conversation: {message}")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)


class JinjaTemplate(ChatTemplate):
    name = "gguf"

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.template = env.from_string(source)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.renders_tools = "tools" in source
        self.stop_markers = (eos_token,) if eos_token else ()

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> str:
        return self._render(messages, tools, add_generation_prompt=True)

    def render_reply(self, message: Message, history: list[Message], tools: list[dict[str, Any]] | None) -> str:
        """The template's own rendering of the conversation with the reply, past the prompt, up to its end marker."""
        prompt = self.render(history, tools)
        full = self._render([*history, message], tools, add_generation_prompt=False)
        if not full.startswith(prompt):
            raise InvalidRequestError(
                "the model's chat template does not continue its prompt with the reply; it cannot be trained on"
            )
        reply = full[len(prompt) :]
        ends = [at + len(marker) for marker in self.stop_markers if (at := reply.find(marker)) >= 0]
        return reply[: min(ends)] if ends else reply

    def _render(
        self, messages: list[Message], tools: list[dict[str, Any]] | None, *, add_generation_prompt: bool
    ) -> str:
        try:
            return self.template.render(
                messages=[_for_jinja(m) for m in messages],
                tools=tools if self.renders_tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError as exc:
            raise InvalidRequestError(f"the model's chat template failed: {exc}") from exc


def _for_jinja(message: Message) -> Message:
    """HF templates expect tool-call arguments as objects and the OpenAI nesting."""
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": _maybe_json(call["arguments"])},
            }
            for call in message["tool_calls"]
        ]
    return out


def _maybe_json(text: str) -> Any:
    try:
        return load_json(text, what="tool call arguments")
    except (ValueError, InvalidFieldError):  # not JSON, or nested deeper than a template should walk: as text
        return text


@templates.register("gguf")
def _gguf(hints: Mapping[str, str]) -> ChatTemplate:
    source = hints.get("chat_template")
    if not source:
        raise KeyError("template 'gguf' needs a GGUF with tokenizer.chat_template; use 'chatml'")
    return JinjaTemplate(source, bos_token=hints.get("bos_token", ""), eos_token=hints.get("eos_token", ""))
