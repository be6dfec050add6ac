"""Reading a JSON object that is still being written: its top-level keys and how far each value got.

Parsers need to know, from a prefix, where the top-level ``"name"`` and
``"arguments"`` values are and whether each is complete, without being fooled
by the same keys nested inside the arguments or by braces inside strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Value:
    start: int
    end: int  # one past the last character seen so far
    complete: bool


def scan_value(text: str, start: int) -> Value:
    """The JSON value starting at ``start``: where it ends, or that it has not ended yet."""
    depth, in_string, escaped = 0, False, False
    i = start
    while i < len(text):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if depth == 0:
                    return Value(start, i + 1, True)
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return Value(start, i + 1, True)
        elif depth == 0 and ch in ",}] \t\r\n":
            return Value(start, i, True)  # a bare number, true, false or null
        i += 1
    return Value(start, len(text), False)


def top_level_values(text: str) -> tuple[dict[str, Value], bool]:
    """Top-level ``key -> value`` of the object opening ``text``, and whether the object is closed."""
    values: dict[str, Value] = {}
    i = _skip_space(text, 0)
    if i >= len(text) or text[i] != "{":
        return values, False
    i += 1
    while True:
        i = _skip_space(text, i)
        if i >= len(text):
            return values, False
        if text[i] == "}":
            return values, True
        if text[i] == ",":
            i += 1
            continue
        key = scan_value(text, i)
        if not key.complete or text[i] != '"':
            return values, False
        colon = _skip_space(text, key.end)
        if colon >= len(text) or text[colon] != ":":
            return values, False
        value_at = _skip_space(text, colon + 1)
        if value_at >= len(text):
            return values, False
        value = scan_value(text, value_at)
        values[_decode_key(text[key.start : key.end])] = value
        if not value.complete:
            return values, False
        i = value.end


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _decode_key(literal: str) -> str:
    try:
        return str(json.loads(literal))
    except ValueError:
        return literal[1:-1]
