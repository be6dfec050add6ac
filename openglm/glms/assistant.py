"""The assistant API's side of a turn: attachments read for the model, and a stored history replayed to it.

The server holds the history, so the client sends only its new message. Earlier turns are replayed as plain
user / assistant messages; an answer's tool calls are folded into its text as a short transcript (the tool,
its input, a digest of its outputs), which every chat template can render. The replay is bounded: the newest
turns that fit the model's context (less the answer's room and the new message) go, the oldest are left out.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime
from typing import Any

from ..errors import DocumentError, InvalidFieldError, NotFoundError
from ..files.store import FileStore
from ..knowledge.document import DEFAULT_MAX_CHARS
from ..knowledge.options import approximate_tokens
from ..knowledge.parsing import parse_isolated
from ..protocol.chat import ChatCompletionRequest, ChatMessage, JsonSchemaFormat, ResponseFormat
from .conversations import StoredMessage

ATTACHMENT_CHARS = 8_000  # of each attachment's text given to the model
OUTPUT_CHARS = 1_000  # of a tool's outputs replayed from an earlier turn
ATTACHED_TURNS = 2  # the latest user messages whose attachments are read again when the history is replayed
MESSAGE_TOKENS = 8  # a message's share of the template (role markers and separators), estimated
CONTEXT_RESERVE_SHARE = 8  # 1/8 of the context is kept for the template, the instructions and tool definitions
READ_CACHE_ENTRIES = 256  # attachments' texts kept (each ≤ ATTACHMENT_CHARS): at most ~2 M characters


class _ReadAttachments:
    """What the model was given of each attachment, by file, most recently used kept. A file never changes once
    stored, so its id and creation time name its content: a conversation replays its last turns' attachments on
    every turn, and without this each turn parsed them again in the shared worker pool (``untrusted.pool``)."""

    def __init__(self, entries: int):
        self.entries = entries
        self._texts: OrderedDict[tuple[str, str, datetime, str], str] = OrderedDict()

    def get(self, key: tuple[str, str, datetime, str]) -> str | None:
        text = self._texts.get(key)
        if text is not None:
            self._texts.move_to_end(key)
        return text

    def put(self, key: tuple[str, str, datetime, str], text: str) -> None:
        self._texts[key] = text
        self._texts.move_to_end(key)
        while len(self._texts) > self.entries:
            self._texts.popitem(last=False)


_read_attachments = _ReadAttachments(READ_CACHE_ENTRIES)


async def attachments_of(files: FileStore, account_id: str, file_ids: list[str]) -> list[dict[str, Any]]:
    """The caller's files named by a request: ``{file_id, filename}`` each; one that is not theirs is a 400."""
    found = []
    for file_id in dict.fromkeys(file_ids):
        try:
            record = await files.get(account_id, file_id)
        except NotFoundError:
            raise InvalidFieldError(f"attachments: no file {file_id!r} in your account") from None
        found.append({"file_id": record.id, "filename": record.filename})
    return found


async def attachment_text(files: FileStore, account_id: str, attachments: list[dict[str, Any]]) -> str:
    """What the model reads of the attachments: each file's extracted text (cut at ``ATTACHMENT_CHARS``), or
    a line saying it is not text; the code interpreter also finds them in its workspace. Each file is parsed
    once (``_read_attachments``), however many turns replay it."""
    parts = []
    for attachment in attachments:
        name = attachment["filename"]
        try:
            record = await files.get(account_id, attachment["file_id"])  # still the caller's, still there
        except NotFoundError:
            parts.append(f"[Attached file {name}: no longer available]")
            continue
        key = (account_id, record.id, record.created_at, name)
        if (part := _read_attachments.get(key)) is None:
            try:
                _, data = await files.content(account_id, record.id)
            except (NotFoundError, OSError):
                parts.append(f"[Attached file {name}: no longer available]")
                continue
            part = await _read(data, name)
            _read_attachments.put(key, part)
        parts.append(part)
    return "\n\n".join(parts)


async def _read(data: bytes, name: str) -> str:
    try:  # read whole (up to what a knowledge base takes), then cut: a long file is a long text, not a blob
        document = await parse_isolated(data, name, max_chars=DEFAULT_MAX_CHARS)
    except DocumentError as error:
        why = {"too_large": "too large to read", "too_complex": "too complex to read"}.get(
            error.problem, "not readable as text"
        )
        return f"[Attached file {name}: {len(data)} bytes, {why}]"
    text = document.text[:ATTACHMENT_CHARS]
    more = " (cut)" if len(document.text) > ATTACHMENT_CHARS else ""
    return f"[Attached file {name}{more}]\n{text}\n[End of {name}]"


async def user_message(files: FileStore, account_id: str, text: str, attachments: list[dict[str, Any]]) -> ChatMessage:
    if not attachments:
        return ChatMessage(role="user", content=text)
    block = await attachment_text(files, account_id, attachments)
    return ChatMessage(role="user", content=f"{block}\n\n{text}")


async def replayed(
    files: FileStore, account_id: str, history: list[StoredMessage], budget: int | None = None
) -> list[ChatMessage]:
    """The stored history as chat messages. With a ``budget`` (tokens, estimated): the newest turns that fit it,
    oldest dropped first, a turn (a user message and its answer) whole or not at all. Attachments are read again
    for the last ``ATTACHED_TURNS`` user messages only; older ones are named."""
    turns: list[list[StoredMessage]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    kept: list[list[ChatMessage]] = []
    spent = 0
    for age, turn in enumerate(reversed(turns)):
        messages = [await replayed_message(files, account_id, m, read=age < ATTACHED_TURNS) for m in turn]
        spent += sum(estimated_tokens(m.content if isinstance(m.content, str) else "") for m in messages)
        if budget is not None and spent > budget:
            break
        kept.append(messages)
    return [message for turn in reversed(kept) for message in turn]


async def replayed_message(files: FileStore, account_id: str, message: StoredMessage, *, read: bool) -> ChatMessage:
    if message.role != "user":
        return ChatMessage(role="assistant", content=transcript(message))
    attachments = message.attachments or []
    if read or not attachments:
        return await user_message(files, account_id, message.content, attachments)
    names = ", ".join(a["filename"] for a in attachments)
    return ChatMessage(role="user", content=f"[Attached earlier: {names}]\n\n{message.content}")


def estimated_tokens(text: str) -> int:
    """A tokenizer-free estimate of a message's tokens, on the high side (a word can be several tokens)."""
    return approximate_tokens(text) * 5 // 4 + MESSAGE_TOKENS


def history_budget(context_length: int, max_tokens: int, new_message: ChatMessage) -> int:
    """What the replayed history may take of the model's context: what is left after the answer's
    ``max_tokens``, the new message, and a share kept for the template, the instructions and tool definitions."""
    content = new_message.content if isinstance(new_message.content, str) else ""
    reserved = context_length // CONTEXT_RESERVE_SHARE
    return max(0, context_length - max_tokens - estimated_tokens(content) - reserved)


def transcript(message: StoredMessage) -> str:
    lines = []
    for call in message.tool_calls or []:
        outputs = json.dumps(call.get("outputs") or [], ensure_ascii=False)
        if len(outputs) > OUTPUT_CHARS:
            outputs = outputs[:OUTPUT_CHARS] + "…"
        name = call.get("name") or call["type"]
        lines.append(f"[{name} called with: {call.get('input', '')}]\n[{name} returned: {outputs}]")
    if message.content:
        lines.append(message.content)
    return "\n".join(lines)


SUGGESTIONS = 3
SUGGESTION_CHARS = 80
SUGGEST_TOKENS = 400  # above what the schema's grammar lets the model write
SUGGEST_PROMPT = (
    "Suggest up to three short follow-up questions the user might ask next in this conversation. "
    'Answer with JSON: {"suggest_list": ["…", "…", "…"]}.'
)
# The grammar built from this schema bounds the answer: at most 3 strings of at most 80 characters.
SUGGEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "suggest_list": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": SUGGESTION_CHARS},
            "minItems": 1,
            "maxItems": SUGGESTIONS,
        }
    },
    "required": ["suggest_list"],
}


def suggest_request(model: str, history: list[ChatMessage]) -> ChatCompletionRequest:
    schema = JsonSchemaFormat(name="suggestions", schema=SUGGEST_SCHEMA)
    return ChatCompletionRequest(
        model=model,
        messages=[*history, ChatMessage(role="user", content=SUGGEST_PROMPT)],
        max_tokens=SUGGEST_TOKENS,
        response_format=ResponseFormat(type="json_schema", json_schema=schema),
    )


def suggestions_of(answer: str | None) -> list[str]:
    """The model's list (a grammar-bound model writes exactly the schema; any other answer gives what it can)."""
    try:
        parsed = json.loads(answer or "")
    except ValueError:
        return []
    items = parsed.get("suggest_list") if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        return []
    return [item.strip()[:SUGGESTION_CHARS] for item in items if isinstance(item, str) and item.strip()][:SUGGESTIONS]
