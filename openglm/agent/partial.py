"""Reading one string value out of a JSON object that is still being written, so that a tool call's code can
stream to the client as it is generated."""

from __future__ import annotations

import json
import re


def partial_string(raw: str, key: str) -> str:
    """The decoded text of ``"key": "..."`` in ``raw`` so far ('' until its value starts)."""
    match = re.search(rf'"{re.escape(key)}"\s*:\s*"', raw)
    if match is None:
        return ""
    body = raw[match.end() :]
    end = _closing_quote(body)
    body = body[:end] if end is not None else _drop_unfinished_escape(body)
    try:
        text = str(json.loads(f'"{body}"'))
    except json.JSONDecodeError:
        return ""
    # Half of a surrogate pair (an emoji written as two \\u escapes) waits for its other half.
    return text[:-1] if text and "\ud800" <= text[-1] <= "\udbff" else text


def _closing_quote(body: str) -> int | None:
    escaped = False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return i
    return None


def _drop_unfinished_escape(body: str) -> str:
    """Cut an escape that is still being written (``\\``, ``\\u00``) off the end."""
    i = 0
    while i < len(body):
        if body[i] != "\\":
            i += 1
            continue
        needed = 6 if body[i + 1 : i + 2] == "u" else 2
        if i + needed > len(body):
            return body[:i]
        i += needed
    return body
