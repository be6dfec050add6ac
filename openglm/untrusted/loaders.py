"""JSON and YAML from untrusted text with bounded depth, and YAML without aliases.

``json.loads`` recurses once per nesting level and raises ``RecursionError`` (not ``ValueError``) past about a
thousand; code that walks the result recursively fails later still. A YAML alias is a pointer, so a kilobyte of
aliases to aliases ("billion laughs") expands to gigabytes when constructed. Both are refused here with a clear
``InvalidFieldError``, before anything is built from them.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidFieldError

MAX_DEPTH = 64  # nested objects and arrays: real documents (OpenAPI, fine-tuning lines) stay far below


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_json(text: str | bytes, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth``; syntax errors stay ``json.JSONDecodeError``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(what, max_depth) from None
    if nesting_depth(value) > max_depth:
        raise _too_deep(what, max_depth)
    return value


def load_yaml(text: str, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """YAML's safe subset without anchors or aliases, nested at most ``max_depth`` deep, as JSON data (dates and
    other non-JSON scalars become strings). Syntax errors stay ``yaml.YAMLError``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: parsing is C, not Python
    depth = 0
    for event in yaml.parse(text, Loader=loader):  # events only: nothing is expanded or built yet
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise InvalidFieldError(f"{what} uses YAML anchors or aliases (&, *), which are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise _too_deep(what, max_depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    value = yaml.load(text, Loader=loader)  # a safe loader, and the events were checked above
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):  # a mapping key JSON cannot have (a list, say)
        raise InvalidFieldError(f"{what} has mapping keys that are not strings or numbers") from None


def _too_deep(what: str, max_depth: int) -> InvalidFieldError:
    return InvalidFieldError(f"{what} is nested more than {max_depth} levels deep")
