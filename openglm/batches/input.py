"""A batch's input file, checked line by line before the batch is accepted: each line
``{"custom_id", "method": "POST", "url", "body"}`` for the batch's endpoint, ``custom_id`` unique, the body a valid
request of that endpoint (not streamed), one model for the whole batch (as OpenAI requires)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ..protocol.batches import BatchInputLine
from ..protocol.chat import ChatCompletionRequest
from ..protocol.embeddings import EmbeddingRequest
from ..untrusted.transfer import transferable

MAX_LINES = 50_000  # OpenAI's limit per batch
ERRORS_LISTED = 100  # a file with more bad lines lists this many (and says how many more)
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
# Every spelling of an endpoint either SDK or the reference's files use → the one OpenGLM records.
SPELLINGS = {
    f"{prefix}/{path}": canonical
    for canonical, path in ((CHAT, "chat/completions"), (EMBEDDINGS, "embeddings"))
    for prefix in ("/v1", "/v4", "/api/paas/v4", "")
}
BODIES: dict[str, type[BaseModel]] = {CHAT: ChatCompletionRequest, EMBEDDINGS: EmbeddingRequest}


def canonical_endpoint(endpoint: str) -> str | None:
    return SPELLINGS.get(endpoint.strip().rstrip("/"))


@transferable
@dataclass
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None


@transferable
@dataclass
class Line:
    number: int  # 1-based, counting every line of the file
    custom_id: str
    body: dict[str, Any]


@transferable
@dataclass
class Parsed:
    """What ``parse_input`` found (sent back from a parsing worker: plain data classes only)."""

    lines: list[Line] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    more_errors: int = 0
    model: str | None = None

    def refuse(self, code: str, message: str, line: int | None = None, param: str | None = None) -> None:
        if len(self.errors) < ERRORS_LISTED:
            self.errors.append(LineError(code, message, line, param))
        else:
            self.more_errors += 1


def parse_input(data: bytes, endpoint: str) -> Parsed:
    """Every line checked (CPU-bound: callers run it in a thread); ``errors`` empty when the batch can run."""
    parsed = Parsed()
    seen: set[str] = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        parsed.refuse("invalid_file", "the input file is not UTF-8 text")
        return parsed
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(parsed.lines) >= MAX_LINES:
            parsed.refuse("too_many_lines", f"a batch holds at most {MAX_LINES} requests", number)
            break
        line = _line(parsed, number, raw, endpoint)
        if line is None:
            continue
        if line.custom_id in seen:
            parsed.refuse("duplicate_custom_id", f"custom_id {line.custom_id!r} is used by an earlier line", number)
            continue
        seen.add(line.custom_id)
        parsed.lines.append(line)
    if not parsed.lines and not parsed.errors:
        parsed.refuse("empty_file", "the input file has no requests")
    return parsed


def _line(parsed: Parsed, number: int, raw: str, endpoint: str) -> Line | None:
    try:
        entry = BatchInputLine.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        parsed.refuse("invalid_json", f"not a JSON object: {exc.msg}", number)
        return None
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        parsed.refuse("invalid_request", f"{param}: {first['msg']}" if param else first["msg"], number, param)
        return None
    if canonical_endpoint(entry.url) != endpoint:
        parsed.refuse("invalid_url", f"url {entry.url!r} is not this batch's endpoint {endpoint}", number, "url")
        return None
    try:
        body = BODIES[endpoint].model_validate(entry.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(["body", *(str(p) for p in first["loc"])])
        parsed.refuse("invalid_request", f"{param}: {first['msg']}", number, param)
        return None
    if getattr(body, "stream", False):
        parsed.refuse("invalid_request", "body.stream: a batch line cannot be streamed", number, "body.stream")
        return None
    model = str(getattr(body, "model", "") or "")
    if parsed.model is None:
        parsed.model = model
    elif model != parsed.model:
        parsed.refuse(
            "mismatched_model", f"body.model {model!r}: a batch runs one model ({parsed.model!r})", number, "body.model"
        )
        return None
    return Line(number, entry.custom_id, entry.body)
