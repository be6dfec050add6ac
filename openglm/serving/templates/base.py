"""Chat templates turn normalized messages into the prompt text a model was trained on.

Normalized messages (built by the chat service) are plain dicts:
``{"role": "system"|"user"|"assistant"|"tool", "content": str,
"tool_calls": [{"id", "name", "arguments"}], "tool_call_id": str, "name": str}``.
Tools are OpenAI tool dicts ``{"type": "function", "function": {...}}``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any

from ...registry import Registry

Message = dict[str, Any]


class ChatTemplate(abc.ABC):
    name: str = ""
    # Special tokens that end the assistant's turn besides the model's own EOG tokens.
    stop_markers: tuple[str, ...] = ()
    # Whether ``render`` puts tool definitions into the prompt itself.
    renders_tools: bool = False
    # Built-in tools the format knows by type (GLM-4: python, simple_browser, cogview), called with a raw body.
    builtin_tools: frozenset[str] = frozenset()

    @abc.abstractmethod
    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> str:
        """The prompt, ending where the assistant's reply begins."""

    def render_reply(self, message: Message, history: list[Message], tools: list[dict[str, Any]] | None) -> str:
        """What the model writes for assistant ``message`` after ``render(history, tools)``, end-of-turn included.

        Training targets are this text, so it must be what serving reads back: the content, the tool calls in the
        format the template's tool-call parser parses, and the marker that ends the turn (a stop marker). The
        message is in the form ``render`` takes (already adapted by ``adapt_for_template`` where needed).
        """
        raise NotImplementedError(f"chat template {self.name!r} cannot render a reply for training")


TemplateFactory = Callable[[Mapping[str, str]], ChatTemplate]
templates: Registry[TemplateFactory] = Registry("chat template")


def choose_template(name: str, hints: Mapping[str, str]) -> ChatTemplate:
    """Resolve a catalog ``template`` setting, ``auto`` from what the weights say."""
    from . import chatml, glm4, jinja  # noqa: F401  (registers the built-ins)

    if name == "auto":
        if hints.get("architecture") in {"chatglm", "glm4"}:
            name = "glm4"
        elif hints.get("chat_template"):
            name = "gguf"
        else:
            name = "chatml"
    return templates.get(name)(hints)
