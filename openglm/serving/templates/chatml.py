"""ChatML, the fallback for weights that carry no template of their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import ChatTemplate, Message, templates


class ChatMLTemplate(ChatTemplate):
    name = "chatml"
    stop_markers = ("<|im_end|>", "<|im_start|>")

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> str:
        parts = [f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n" for m in messages]
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def render_reply(self, message: Message, history: list[Message], tools: list[dict[str, Any]] | None) -> str:
        return f"{message.get('content') or ''}<|im_end|>"


@templates.register("chatml")
def _chatml(hints: Mapping[str, str]) -> ChatTemplate:
    return ChatMLTemplate()
