"""Check a chat request's messages and turn them into the plain dicts templates render."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import InvalidFieldError, InvalidRequestError
from ..protocol.chat import ChatMessage, ToolCall
from .templates.base import ChatTemplate, Message
from .toolcalls.base import ParsedCall, ToolCallParser

ROLE_ALIASES = {"developer": "system", "function": "tool", "observation": "tool"}


def normalize_raw_messages(raw: list[Any], where: str) -> list[Message]:
    """Messages as JSON values (a training line's) checked against the chat request's own message schema, then
    normalized as a request's are; errors start with ``where``."""
    try:
        parsed = [ChatMessage.model_validate(m) for m in raw]
    except ValueError as exc:
        raise InvalidFieldError(f"{where}: {exc}") from exc
    return normalize_messages(parsed)


def normalize_messages(messages: list[ChatMessage], *, sees: bool = False, image_marker: str = "") -> list[Message]:
    """Validated messages with one spelling per role; errors name the offending index. ``sees``: the model takes
    images, rendered as ``image_marker`` (where an engine that reads images puts each) or, without one, as an
    ``[image]`` placeholder (the text then only bounds the prompt: the engine takes the messages)."""
    if not messages:
        raise InvalidFieldError("messages 参数非法 / messages must be a non-empty list")
    out: list[Message] = []
    pending: dict[str, str] = {}  # tool-call id -> function name, awaiting a result
    for i, message in enumerate(messages):
        role = ROLE_ALIASES.get(message.role, message.role)
        where = f"messages[{i}]"
        content = _text_content(message, where, sees, image_marker or "[image]")
        if role == "assistant":
            calls = [
                _normalize_call(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(message.tool_calls or [])
            ]
            if content is None and not calls:
                raise InvalidFieldError(f"{where}: an assistant message needs content or tool_calls")
            pending = {call["id"]: call["name"] for call in calls}
            out.append({"role": "assistant", "content": content or "", "tool_calls": calls})
        elif role == "tool":
            out.append(_tool_result(message, content, pending, where))
        else:
            if content is None:
                raise InvalidFieldError(f"{where}: a {message.role} message needs content")
            if message.tool_calls:
                raise InvalidFieldError(f"{where}: only assistant messages may carry tool_calls")
            out.append({"role": role, "content": content})
    return out


def _text_content(message: ChatMessage, where: str, sees: bool, image_marker: str) -> str | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    texts = []
    for j, part in enumerate(message.content):
        if part.type == "image_url" and sees:
            texts.append(image_marker)
            continue
        if part.type in ("image_url", "image", "input_image"):
            # Never dropped: a model that cannot see says so (Zhipu's 1210, as for any parameter it cannot take).
            raise InvalidRequestError(
                f"{where}.content[{j}]: this model cannot see images (it reads text only); the image was not sent"
            )
        if part.type != "text" or part.text is None:
            raise InvalidFieldError(
                f"{where}.content[{j}]: content part type {part.type!r} is not supported by this model"
            )
        texts.append(part.text)
    return "".join(texts)


def last_user_text(messages: list[ChatMessage]) -> str:
    """The text of the last user message (its text parts joined by spaces); empty when there is none."""
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, str):
                return content
            return " ".join(part.text or "" for part in content or [] if part.type == "text")
    return ""


def image_bytes(messages: list[ChatMessage]) -> tuple[bytes, ...]:
    """The images of ``messages`` in the order they are rendered, from the checked ``data:`` URLs the run service
    made of them (``ImageInputs.resolved``)."""
    images = []
    for i, message in enumerate(messages):
        for j, part in enumerate(message.content if isinstance(message.content, list) else []):
            if part.type != "image_url":
                continue
            given = part.image_url
            url = given if isinstance(given, str) else str((given or {}).get("url") or "")
            header, _, payload = url.partition(",")
            if not header.startswith("data:") or ";base64" not in header:
                where = f"messages[{i}].content[{j}]"
                raise InvalidFieldError(f"{where}: the image was not read before it reached the model")
            try:
                images.append(base64.b64decode(payload, validate=True))
            except ValueError:
                raise InvalidFieldError(f"messages[{i}].content[{j}]: the image's base64 is not valid") from None
    return tuple(images)


def chat_messages(messages: list[ChatMessage]) -> tuple[dict[str, Any], ...]:
    """The messages as an OpenAI-compatible server's ``/chat/completions`` takes them (roles spelled its way), for
    a request with images to a model that sees."""
    out = []
    for message in messages:
        dumped = message.model_dump(mode="json", exclude_none=True, by_alias=True)
        dumped["role"] = ROLE_ALIASES.get(message.role, message.role)
        out.append(dumped)
    return tuple(out)


def _normalize_call(call: ToolCall, where: str) -> dict[str, str]:
    arguments = call.function.arguments
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call.id or f"call_{abs(hash((where, arguments))):x}",
        "name": call.function.name,
        "arguments": arguments,
    }


def _tool_result(message: ChatMessage, content: str | None, pending: dict[str, str], where: str) -> Message:
    if not pending:
        raise InvalidFieldError(f"{where}: a tool message must follow an assistant message with tool_calls")
    call_id = message.tool_call_id
    if call_id is not None and call_id not in pending:
        raise InvalidFieldError(f"{where}: tool_call_id {call_id!r} does not match a preceding tool call")
    name = pending.get(call_id) if call_id else message.name or next(iter(pending.values()))
    return {"role": "tool", "content": content or "", "tool_call_id": call_id, "name": name}


def adapt_for_template(
    messages: list[Message], template: ChatTemplate, parser: ToolCallParser, tools: list[dict[str, Any]] | None
) -> list[Message]:
    """Write tools, calls and results as text for templates that have no notion of them."""
    if template.renders_tools:
        return messages
    out: list[Message] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            calls = [ParsedCall(c["name"], c["arguments"]) for c in message["tool_calls"]]
            text = "\n".join(filter(None, [message["content"], parser.render_calls(calls)]))
            out.append({"role": "assistant", "content": text})
        elif message["role"] == "tool":
            role, text = parser.render_result(message["content"], message.get("name"))
            out.append({"role": role, "content": text})
        else:
            out.append({"role": message["role"], "content": message["content"]})
    if tools:
        instructions = parser.system_prompt()
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out
